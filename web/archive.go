package web

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// writeArchive answers a RenderTar route: v, the core's typed answer that
// was already decoded strictly and validated, becomes a plain tar built
// here. The front never forwards the core's bytes: the tar holds exactly
// the validated members, each a plain file name.
func (h *Handler) writeArchive(w http.ResponseWriter, rt *api.Route, reqID string, v any) {
	a, ok := v.(api.Archive)
	if !ok {
		h.badCore(w, rt, reqID, fmt.Errorf("response %T is not an archive", v))
		return
	}
	body, err := buildTar(a.ArchiveFiles())
	if err != nil {
		h.badCore(w, rt, reqID, err)
		return
	}
	name := a.ArchiveName()
	if !api.IsArchiveName(name) {
		h.badCore(w, rt, reqID, errors.New("archive name is not a plain .tar file name"))
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// buildTar writes the members as regular files, mode 0600, owned by
// nobody in particular (uid/gid 0, no user or group names), dated now.
// Names must be plain .ovpn file names (no directory part), and unique.
func buildTar(files []api.ArchiveFile) ([]byte, error) {
	if len(files) == 0 {
		return nil, errors.New("archive has no member")
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := make(map[string]bool, len(files))
	now := time.Now().Truncate(time.Second)
	for _, f := range files {
		if !api.IsProfileFileName(f.Name) || seen[f.Name] {
			return nil, fmt.Errorf("archive member name %q refused", f.Name)
		}
		seen[f.Name] = true
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.Name, Mode: 0o600, Size: int64(len(f.Data)), ModTime: now}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("tar header %s: %w", f.Name, err)
		}
		if _, err := tw.Write([]byte(f.Data)); err != nil {
			return nil, fmt.Errorf("tar member %s: %w", f.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("tar: %w", err)
	}
	return buf.Bytes(), nil
}
