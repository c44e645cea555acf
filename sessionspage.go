package sessionauth

import (
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// sessionCard is one session as the page shows it.
type sessionCard struct {
	ID, Device, Kind, Browser, OS, Location, IP string
	Site                                        string // where it signed in, when known
	SignedIn, SignedInAt, LastActive, LastAt    string
	Ended, EndReason                            string
	Current                                     bool
	Tokens                                      []string // the live tokens it made, which its Sign out button ends
}

type sessionsPageData struct {
	Name, Endpoints, CSRF, Site string
	Active, Ended               []sessionCard
	Others                      int
	// The live tokens "Sign out all other sessions" ends: all but those
	// the current session made.
	OthersTokens []string
	// With api_tokens: the user's live tokens and the longest lifetime.
	TokensOn    bool
	Tokens      []tokenCard
	MaxLifetime string
	// AccountURL: the account page, for a session an account signed in.
	AccountURL string
	// StaleFor, when the session signed in longer ago than api_tokens
	// fresh: that duration, as the page says it (a token asks for a
	// step-up first).
	StaleFor string
}

// tokenCard is one API token as the page lists it: never its value.
type tokenCard struct {
	ID, Name, Created, LastUsed, LastIP, Expires, ExpiresAt string
}

var endReasons = map[string]string{
	session.EndLogout: "Signed out", session.EndRevoked: "Signed out remotely",
	session.EndLimit: "Replaced by a newer sign-in", session.EndIPChange: "Ended: new network",
	session.EndCountryChange: "Ended: new country", session.EndExpired: "Expired",
	session.EndIDP: "Ended by the identity provider",
}

func (ss *selfService) renderSessions(w http.ResponseWriter, r *http.Request, cur *session.Session, list []*session.Session, now time.Time) error {
	data := sessionsPageData{Name: cur.Name, Endpoints: ss.endpoints, CSRF: csrfToken(cur), Site: siteLabel(ss.baseURL, r), TokensOn: ss.tokens != nil}
	if data.TokensOn {
		data.MaxLifetime = humanDuration(time.Duration(ss.tokens.cfg.MaxLifetime))
		if fresh := time.Duration(ss.tokens.cfg.Fresh); now.Sub(cur.AuthenticatedOrCreated()) > fresh {
			data.StaleFor = humanDuration(fresh)
		}
	}
	if data.Name == "" {
		data.Name = cur.UserID
	}
	if ss.accountPage && cur.Provider == "" && accountMethod(cur.AuthMethod) {
		data.AccountURL = ss.endpoints + "/account"
	}
	madeBy := map[string][]string{} // parent id -> its live tokens' names
	for _, s := range list {
		if v := ss.policy.View(s, now); v.IsToken() && v.Active() {
			madeBy[v.Parent] = append(madeBy[v.Parent], v.Label)
			if v.Parent != cur.ID {
				data.OthersTokens = append(data.OthersTokens, v.Label)
			}
		}
	}
	for _, s := range list {
		v := ss.policy.View(s, now)
		if v.IsToken() {
			if v.Active() {
				exp := ss.policy.ExpiresAt(v)
				lastUsed := "never"
				if v.LastActiveAt.After(v.CreatedAt) {
					lastUsed = relTime(v.LastActiveAt, now)
				}
				data.Tokens = append(data.Tokens, tokenCard{ID: v.ID, Name: v.Label,
					Created: relTime(v.CreatedAt, now), LastUsed: lastUsed, LastIP: orDefault(v.IP, "unknown"),
					Expires: exp.UTC().Format("2 Jan 2006"), ExpiresAt: exp.UTC().Format(time.RFC1123)})
			}
			continue
		}
		c := sessionCard{
			ID: v.ID, Device: orDefault(v.Device, "Unknown Device"), Kind: v.DeviceType,
			Browser: orDefault(v.Browser, "Unknown browser"), OS: orDefault(v.OS, "Unknown OS"),
			Location: placeOf(v.IP, v.City, v.Country), IP: orDefault(v.IP, "unknown"),
			SignedIn: relTime(v.CreatedAt, now), SignedInAt: v.CreatedAt.UTC().Format(time.RFC1123),
			LastActive: relTime(v.LastActiveAt, now), LastAt: v.LastActiveAt.UTC().Format(time.RFC1123),
			Current: v.ID == cur.ID, Tokens: madeBy[v.ID], Site: v.Site,
		}
		if v.Active() {
			data.Active = append(data.Active, c)
			if !c.Current {
				data.Others++
			}
			continue
		}
		c.Ended, c.EndReason = relTime(v.EndedAt, now), orDefault(endReasons[v.EndReason], "Ended")
		data.Ended = append(data.Ended, c)
	}
	// The current session first, then by last activity (the store's order).
	for i, c := range data.Active {
		if c.Current && i > 0 {
			copy(data.Active[1:i+1], data.Active[:i])
			data.Active[0] = c
			break
		}
	}
	htmlHeaders(w)
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on the page's own forms, which the cross-site rule
	// must refuse.
	w.Header().Set("Referrer-Policy", "same-origin")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	return renderPage(w, pageSessions, data)
}

// placeOf says where a session is, the same way on every page: the
// GeoIP city and country, "This computer" for a loopback address (the
// gateway's own machine, which GeoIP cannot place), else "Unknown location".
func placeOf(ip, city, country string) string {
	switch {
	case city != "" && country != "":
		return city + ", " + country
	case country != "":
		return country
	}
	if a, err := netip.ParseAddr(ip); err == nil && a.Unmap().IsLoopback() {
		return "This computer"
	}
	return "Unknown location"
}

// siteLabel names the site to the person reading a page: base_url's host,
// else the Host the request came to.
func siteLabel(baseURL string, r *http.Request) string {
	if u, err := url.Parse(baseURL); err == nil && baseURL != "" {
		return u.Host
	}
	return sanitise(r.Host, 256)
}

// sessionSite names the site a sign-in happens on, which the session
// keeps for the sessions page (sites may share a store): base_url's
// host, else the request's Host when a host matcher of the server
// accepted it; "" for a Host the client chose.
func (h *Handler) sessionSite(r *http.Request) string {
	if u, err := url.Parse(h.BaseURL); err == nil && h.BaseURL != "" {
		return u.Host
	}
	if validHost.MatchString(r.Host) && h.hostMatched(r) {
		return r.Host
	}
	return ""
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
