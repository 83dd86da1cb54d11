package clientsdk

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/api/approval"
	"github.com/portcullis-gw/portcullis/internal/random"
)

// SyncResult is what a sync found.
type SyncResult struct {
	// Host is the sync host that answered.
	Host string `json:"host"`
	// Updated reports a new configuration; Conf is it, its signature
	// already checked. Apply it with ApplySync.
	Updated bool   `json:"updated"`
	Conf    string `json:"-"`
	// Status is the HTTP status of the answer (200, or 480 "needs a
	// subscription", which the Pritunl Client skips).
	Status int `json:"status"`
}

const alnumChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// MaxSyncAnswer bounds a sync answer.
const MaxSyncAnswer = 4 << 20

// SyncPath is the path of a profile's sync request, without its query
// string (the part the signature covers).
func SyncPath(p *Profile) string {
	h := p.Header
	return "/key/sync/" + h.OrganizationID + "/" + h.UserID + "/" + h.ServerID + "/" + h.SyncHash
}

// NewSyncRequest builds the sync request the Pritunl Client sends to one
// sync host (service/sprofile syncProfile): GET <host>/key/sync/<org>/
// <user>/<server>/<sync_hash>?ver=2 with Auth-Token, Auth-Timestamp,
// Auth-Nonce and Auth-Signature = b64std(HMAC-SHA512(sync_secret,
// token&timestamp&nonce&GET&path)), the path taken before ?ver=2 is added.
func NewSyncRequest(ctx context.Context, p *Profile, host string, now time.Time, rnd io.Reader) (*http.Request, error) {
	if !strings.HasPrefix(host, "https://") {
		return nil, fmt.Errorf("sync host %q is not an https URL", host)
	}
	if h := p.Header.SyncHash; h == "" || len(h) > 256 || strings.Trim(h, alnumChars) != "" {
		return nil, fmt.Errorf("sync: the profile's sync_hash %q is not 1-256 letters or digits", h)
	}
	nonce, err := random.AlnumFrom(rnd, 32)
	if err != nil {
		return nil, err
	}
	path := SyncPath(p)
	hdr := api.ApprovalHeaders{Token: p.Header.SyncToken, Timestamp: strconv.FormatInt(now.Unix(), 10), Nonce: nonce}
	hdr.Signature = approval.HMACSign(p.Header.SyncSecret, approval.SyncHMACMessage(hdr, path))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(host, "/")+path+"?ver=2", nil)
	if err != nil {
		return nil, err
	}
	api.SetApprovalHeaders(req.Header, hdr)
	req.Header.Set("User-Agent", "pritunl")
	return req, nil
}

// Sync asks the profile's sync hosts, in order, until one answers, and
// checks the answer's signature: {} means the profile is current, else
// the new configuration is returned (Updated). A host's failure moves on
// to the next, as the Pritunl Client does. Options.Timeout defaults to the
// Pritunl Client's 5 s; the public addresses and client version are not
// used.
func Sync(ctx context.Context, p *Profile, o Options) (*SyncResult, error) {
	o = o.withDefaults(5 * time.Second)
	hosts := o.Hosts
	if hosts == nil {
		hosts = p.Header.SyncHosts
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("%w: the profile lists no sync host", ErrAllHostsFailed)
	}
	client := o.httpClient(5 * time.Second)
	return firstAnswer(ctx, hosts, func(host string) (*SyncResult, error) {
		return syncHost(ctx, client, p, host, o)
	})
}

func syncHost(ctx context.Context, client *http.Client, p *Profile, host string, o Options) (*SyncResult, error) {
	req, err := NewSyncRequest(ctx, p, host, o.Now(), o.Rand)
	if err != nil {
		return nil, &HostError{Host: host, Err: err}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, &HostError{Host: host, Err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxSyncAnswer+1))
	if err != nil {
		return nil, &HostError{Host: host, Err: err}
	}
	res := &SyncResult{Host: host, Status: resp.StatusCode}
	switch {
	case resp.StatusCode == 480:
		return res, nil
	case resp.StatusCode != http.StatusOK:
		return nil, &HostError{Host: host, Status: resp.StatusCode}
	case len(raw) > MaxSyncAnswer:
		return nil, &HostError{Host: host, Err: fmt.Errorf("sync answer larger than %d bytes", MaxSyncAnswer)}
	}
	conf, err := CheckSyncAnswer(raw, p.Header.SyncSecret)
	if err != nil {
		return nil, &HostError{Host: host, Err: err}
	}
	res.Updated, res.Conf = conf != "", conf
	return res, nil
}

// CheckSyncAnswer reads a sync answer: "" for {} (no update), else the
// configuration, whose signature must be b64std(HMAC-SHA512(sync_secret,
// conf)), compared in constant time.
func CheckSyncAnswer(raw []byte, syncSecret string) (string, error) {
	var ans struct {
		Signature string `json:"signature"`
		Conf      string `json:"conf"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return "", fmt.Errorf("sync answer is not JSON: %w", err)
	}
	if ans.Conf == "" {
		return "", nil
	}
	want := approval.ConfSignature(syncSecret, ans.Conf)
	if subtle.ConstantTimeCompare([]byte(want), []byte(ans.Signature)) != 1 {
		return "", errors.New("sync answer: signature invalid")
	}
	return ans.Conf, nil
}

// ApplySync merges a checked sync configuration into the current profile
// text the way the Pritunl Client does (service/sprofile syncUpdate): the
// new text replaces the old, except that the client keeps its own
// setenv UV_ID / UV_NAME lines, its <tls-auth>/<tls-crypt> block (and
// key-direction), its <cert> unless the update has one, and its <key>; the
// header's sync_token and sync_secret stay the client's own. The result
// parses with ParseProfile.
func ApplySync(current, conf string) (string, error) {
	old, err := ParseProfile(current)
	if err != nil {
		return "", fmt.Errorf("current profile: %w", err)
	}
	for _, tag := range []string{"<key>", "<tls-auth>", "<tls-crypt>"} {
		if strings.Contains(conf, tag) {
			return "", fmt.Errorf("sync configuration carries a %s block: the client keeps its own", tag)
		}
	}
	var uvID, uvName string
	for _, l := range strings.Split(current, "\n") {
		switch {
		case strings.HasPrefix(l, "setenv UV_ID "):
			uvID = l
		case strings.HasPrefix(l, "setenv UV_NAME "):
			uvName = l
		}
	}
	// The header is kept as it comes, with the client's own sync_token and
	// sync_secret added as its last keys (the Pritunl Client stores the
	// parsed header apart and keeps them there).
	token, _ := json.Marshal(old.Header.SyncToken)
	secret, _ := json.Marshal(old.Header.SyncSecret)
	var lines []string
	inHeader, headerDone := false, false
	for _, l := range strings.Split(strings.TrimSuffix(conf, "\n"), "\n") {
		switch {
		case !headerDone && l == "#{":
			inHeader = true
		case inHeader && l == "#}":
			inHeader, headerDone = false, true
			if last := len(lines) - 1; lines[last] != "#{" {
				lines[last] += ","
			}
			lines = append(lines, `# "sync_token": `+string(token)+",", `# "sync_secret": `+string(secret))
		case inHeader:
			if strings.Contains(l, `"sync_token"`) || strings.Contains(l, `"sync_secret"`) {
				return "", errors.New("sync configuration carries sync secrets")
			}
		case strings.HasPrefix(l, "setenv UV_ID ") && uvID != "":
			l = uvID
		case strings.HasPrefix(l, "setenv UV_NAME ") && uvName != "":
			l = uvName
		}
		lines = append(lines, l)
	}
	if !headerDone {
		return "", errors.New("sync configuration has no JSON header")
	}
	data := strings.Join(lines, "\n") + "\n"
	var tail string
	if strings.Contains(current, "key-direction") && !strings.Contains(data, "key-direction") {
		tail += "key-direction 1\n"
	}
	tail += block(current, "tls-auth") + block(current, "tls-crypt")
	if c := block(data, "cert"); c == "" {
		tail += block(current, "cert")
	}
	tail += block(current, "key")
	return data + tail, nil
}

// block returns <tag>…</tag> and a newline from text, or "".
func block(text, tag string) string {
	i := strings.Index(text, "<"+tag+">")
	j := strings.Index(text, "</"+tag+">")
	if i < 0 || j < i {
		return ""
	}
	return text[i:j+len(tag)+3] + "\n"
}
