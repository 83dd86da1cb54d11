package clientsdk

import (
	"archive/tar"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"
)

// Profile imports as the Pritunl Client makes them: from a .tar of
// profiles, and from a temporary profile link (pritunl://host/k/<code>).

// MaxTarMembers bounds the members read from a .tar.
const MaxTarMembers = 1024

// ErrLinkNotFound is a link the gateway does not know (or no longer does:
// links are single use and expire).
var ErrLinkNotFound = errors.New("invalid or expired profile link")

// ReadTar returns the regular members of a tar of profiles, by base name
// (as the Pritunl Client's CLI ImportTar, every regular member is taken
// whatever its name; the UI takes .ovpn and .conf ones). Each must be at
// most MaxProfileSize bytes. Parse each with ParseProfile.
func ReadTar(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: tar: %v", ErrProfile, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if len(out) >= MaxTarMembers {
			return nil, perr("tar has more than %d members", MaxTarMembers)
		}
		if hdr.Size > MaxProfileSize {
			return nil, perr("tar member %q larger than %d bytes", hdr.Name, MaxProfileSize)
		}
		data, err := io.ReadAll(io.LimitReader(tr, MaxProfileSize+1))
		if err != nil {
			return nil, fmt.Errorf("%w: tar member %q: %v", ErrProfile, hdr.Name, err)
		}
		name := path.Base(hdr.Name)
		if _, dup := out[name]; dup || name == "." || name == "/" {
			return nil, perr("tar member name %q repeated or empty", hdr.Name)
		}
		out[name] = string(data)
	}
	if len(out) == 0 {
		return nil, perr("tar has no profile")
	}
	return out, nil
}

// LinkURL turns a profile link into the URL the Pritunl Client fetches:
// pritunl:// becomes https://, and the first /k/ becomes /ku/.
func LinkURL(uri string) (string, error) {
	switch {
	case strings.HasPrefix(uri, "pritunl://"):
		uri = "https://" + strings.TrimPrefix(uri, "pritunl://")
	case strings.HasPrefix(uri, "https://"):
	default:
		return "", fmt.Errorf("profile link %q is not pritunl:// or https://", uri)
	}
	return strings.Replace(uri, "/k/", "/ku/", 1), nil
}

// FetchLink fetches a temporary profile link as the Pritunl Client imports
// it and returns its profiles by file name; 404 is ErrLinkNotFound. The
// link works once.
func FetchLink(ctx context.Context, uri string, tc *tls.Config, timeout time.Duration) (map[string]string, error) {
	u, err := LinkURL(uri)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = 12 * time.Second
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("profile link: %w", err)
	}
	req.Header.Set("User-Agent", "pritunl")
	req.Header.Set("Accept", "application/json")
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("profile link: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, ErrLinkNotFound
	default:
		return nil, fmt.Errorf("profile link: HTTP %d", resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("profile link: %w", err)
	}
	out := map[string]string{}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("profile link: answer is not a JSON object of profiles: %w", err)
	}
	return out, nil
}
