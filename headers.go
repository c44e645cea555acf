package sessionauth

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/sessionauth/caddy-sessionauth/signature"
)

// headerNames are the identity headers under the configured prefix,
// computed once at provision.
type headerNames struct {
	prefix     string // normalised: lower case, '_' and '.' as '-'
	user       string
	email      string
	name       string
	roles      string
	session    string
	created    string
	ip         string
	loginIP    string
	ipChanged  string
	device     string
	deviceType string
	browser    string
	os         string
	country    string
	city       string
	risk       string
	method     string
	authAt     string
	degraded   string
	signature  string
	// The provider's access token (pass_access_token): under the
	// prefix, so a client's copy is stripped like every identity header.
	accessToken string
}

func newHeaderNames(prefix string) headerNames {
	n := func(s string) string { return http.CanonicalHeaderKey(prefix + s) }
	return headerNames{
		prefix: normaliseHeader(prefix),
		user:   n("User"), email: n("Email"), name: n("Name"), roles: n("Roles"),
		session: n("Session"), created: n("Session-Created"),
		ip: n("IP"), loginIP: n("Login-IP"), ipChanged: n("IP-Changed"),
		device: n("Device"), deviceType: n("Device-Type"), browser: n("Browser"), os: n("OS"),
		country: n("Country"), city: n("City"), risk: n("Risk"),
		method: n("Method"), authAt: n("Authenticated-At"),
		degraded: n("Degraded"), signature: n("Signature"),
		accessToken: n("Access-Token"),
	}
}

func normaliseHeader(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '_' || r == '.':
			return '-'
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return r
	}, s)
}

// stripIdentity deletes every request header a client could use to pose
// as an identity: anything under the prefix, in any case, with '_' or '.'
// for '-' (servers behind us may fold those together). It also keeps a
// client from removing the identity the handler sets: a Connection token
// under the prefix would have a proxy after us delete that header, and a
// request trailer under the prefix would reach the upstream after it.
// Without Connection, Trailer or trailers it does not allocate.
func (hn *headerNames) stripIdentity(r *http.Request) {
	deleteUnder(r.Header, hn.prefix)
	hn.dropTokens(r.Header, "Connection")
	hn.dropTokens(r.Header, "Trailer")
	if len(r.Trailer) == 0 {
		return
	}
	deleteUnder(r.Trailer, hn.prefix)
	// The server fills r.Trailer when the body reaches EOF, with whatever
	// trailers arrived, declared or not: drop them there too, before a
	// proxy copies them on.
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &trailerFilter{ReadCloser: r.Body, trailer: r.Trailer, prefix: hn.prefix}
	}
}

// dropTokens removes the comma-separated tokens under the prefix from the
// header field name, keeping the others; a field left empty is deleted.
func (hn *headerNames) dropTokens(hdr http.Header, name string) {
	values, ok := hdr[name]
	if !ok {
		return
	}
	dirty := false
	for _, v := range values {
		for tok := range strings.SplitSeq(v, ",") {
			if signature.HasPrefix(strings.TrimSpace(tok), hn.prefix) {
				dirty = true
			}
		}
	}
	if !dirty {
		return
	}
	var kept []string
	for _, v := range values {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" && !signature.HasPrefix(tok, hn.prefix) {
				kept = append(kept, tok)
			}
		}
	}
	if len(kept) == 0 {
		delete(hdr, name)
		return
	}
	hdr[name] = []string{strings.Join(kept, ", ")}
}

// trailerFilter deletes the trailers under the prefix once the body has
// been read to the end, when the server has filled them in.
type trailerFilter struct {
	io.ReadCloser
	trailer http.Header
	prefix  string
}

func (f *trailerFilter) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if err == io.EOF {
		deleteUnder(f.trailer, f.prefix)
	}
	return n, err
}

// deleteUnder deletes the fields of hdr under the prefix.
func deleteUnder(hdr http.Header, prefix string) {
	for k := range hdr {
		if signature.HasPrefix(k, prefix) {
			delete(hdr, k)
		}
	}
}

func validHeaderPrefix(p string) bool {
	if p == "" {
		return false
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validCookieName accepts an RFC 6265 token.
func validCookieName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return s != ""
}

// Bounds of values taken from upstreams and clients.
const (
	maxUserID    = 256
	maxValue     = 512
	maxRoles     = 2048
	maxUserAgent = 1024
)

// checkIdentity refuses a sign-in whose values the gateway would have to
// change in meaning to forward. The user id must already be in its
// sanitised form (HTTP trims a header value's outer whitespace, so a
// hand-off of "alice " arrives as alice; anything else that sanitising
// would change is refused). Over-long values are refused, never cut: a
// role list cut in the middle can end in another role ("…,admin-readonly"
// as "…,admin"), an address in another domain.
func checkIdentity(userID, email, name, roles string) error {
	if userID == "" || len(userID) > maxUserID || sanitise(userID, maxUserID) != userID {
		return fmt.Errorf("user id must be 1 to %d printable bytes", maxUserID)
	}
	for _, v := range [...]struct {
		what, value string
		max         int
	}{{"email", email, maxValue}, {"name", name, maxValue}, {"roles", roles, maxRoles}} {
		if len(sanitise(v.value, len(v.value))) > v.max {
			return fmt.Errorf("%s is longer than %d bytes", v.what, v.max)
		}
	}
	return nil
}

// sanitise makes s safe as a header value and bounded: a tab becomes a
// space, other control characters (C0, DEL, C1) and invalid UTF-8 are
// dropped, surrounding space trimmed,
// and the result cut at max bytes on a character boundary.
func sanitise(s string, max int) string {
	clean := true
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r < ' ' || r == 0x7f || (r >= 0x80 && r <= 0x9f) || (r == utf8.RuneError && size == 1) {
			clean = false
			break
		}
		i += size
	}
	if !clean {
		var b strings.Builder
		for i := 0; i < len(s); {
			r, size := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == '\t':
				b.WriteByte(' ')
			case !(r < ' ' || r == 0x7f || (r >= 0x80 && r <= 0x9f) || (r == utf8.RuneError && size == 1)):
				b.WriteString(s[i : i+size])
			}
			i += size
		}
		s = b.String()
	}
	s = strings.TrimSpace(s)
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}
