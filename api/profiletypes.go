package api

import (
	"fmt"
	"regexp"
	"time"
)

// The wire types of profile delivery to the Pritunl Client: the .tar
// download, the temporary profile link (pritunl://host/k/<code>, answered
// by GET /ku/<code>) and profile sync (GET /key/sync/…?ver=2). See
// docs/clients.md.

// MaxProfileLen bounds one profile's text.
const MaxProfileLen = 256 << 10

// MaxArchiveProfiles bounds the profiles of one archive or link (one per
// server of the organization).
const MaxArchiveProfiles = 256

var (
	// ovpnNameRe: a member name as core/profile.Filename makes it
	// (<org>_<user>_<server>.ovpn with unsafe characters replaced): a plain
	// file name, never a path.
	ovpnNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,240}\.ovpn$`)
	tarNameRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,240}\.tar$`)
)

// IsProfileFileName reports whether s is an acceptable .ovpn member name.
func IsProfileFileName(s string) bool { return ovpnNameRe.MatchString(s) }

// IsArchiveName reports whether s is an acceptable .tar download name.
func IsArchiveName(s string) bool { return tarNameRe.MatchString(s) }

// ProfileArchive answers the .tar routes: one freshly issued profile per
// server. The core answers it as JSON; the front checks it and writes the
// tar itself (Route.Render = RenderTar).
type ProfileArchive struct {
	// Filename is the archive's name, <org>_<user>.tar.
	Filename string        `json:"filename" validate:"required,tarname"`
	Profiles []ProfileFile `json:"profiles" validate:"required,min=1,max=256,unique=Name,dive"`
}

// ProfileFile is one .ovpn member of an archive.
type ProfileFile struct {
	// Name is <org>_<user>_<server>.ovpn.
	Name       string `json:"name" validate:"required,ovpnname"`
	ServerID   string `json:"server_id" validate:"required,objectid"`
	CertSerial string `json:"cert_serial" validate:"required,max=64,hexadecimal"`
	Profile    string `json:"profile" validate:"required,max=262144"`
}

// ArchiveName implements Archive.
func (a *ProfileArchive) ArchiveName() string { return a.Filename }

// ArchiveFiles implements Archive.
func (a *ProfileArchive) ArchiveFiles() []ArchiveFile {
	out := make([]ArchiveFile, len(a.Profiles))
	for i, p := range a.Profiles {
		out[i] = ArchiveFile{Name: p.Name, Data: p.Profile}
	}
	return out
}

// ProfileLink answers user.profile.link: the temporary link an admin hands
// to the user. The code in it is the credential: single use, expiring.
type ProfileLink struct {
	// URI is pritunl://<host>/k/<code>, what the Pritunl Client imports.
	URI string `json:"uri" validate:"required,max=512,startswith=pritunl://"`
	// URL is https://<host>/ku/<code>, the same request made by hand.
	URL       string    `json:"url" validate:"required,max=512,startswith=https://"`
	ExpiresAt time.Time `json:"expires_at" validate:"required"`
}

// ProfileMap answers GET /ku/<code>: {"<file name>.ovpn": "<profile>", …},
// the JSON object the Pritunl Client imports from a profile URI.
type ProfileMap map[string]string

// CheckSelf validates the map (Validate calls it): names as in archives,
// non-empty bounded profiles, at most MaxArchiveProfiles entries.
func (m ProfileMap) CheckSelf() error {
	if len(m) > MaxArchiveProfiles {
		return &FieldError{Reason: fmt.Sprintf("more than %d profiles", MaxArchiveProfiles)}
	}
	for name, text := range m {
		switch {
		case !IsProfileFileName(name):
			return &FieldError{Field: name, Reason: ruleText["ovpnname"]}
		case text == "" || len(text) > MaxProfileLen:
			return &FieldError{Field: name, Reason: fmt.Sprintf("profile must be 1 to %d bytes", MaxProfileLen)}
		}
	}
	return nil
}

// ProfileSync answers GET /key/sync/…: empty ({}) when the client's
// sync_hash is current, else the current profile without its secrets and
// its signature, b64std(HMAC-SHA512(sync_secret, conf)).
type ProfileSync struct {
	Signature string `json:"signature,omitempty" validate:"required_with=Conf,omitempty,len=88,b64std"`
	Conf      string `json:"conf,omitempty" validate:"required_with=Signature,max=262144"`
}
