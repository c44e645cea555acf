package sessionauth

import (
	"net/http"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// sessionCard is one session as the page shows it.
type sessionCard struct {
	ID, Device, Kind, Browser, OS, Location, IP string
	SignedIn, SignedInAt, LastActive, LastAt    string
	Ended, EndReason                            string
	Current                                     bool
}

type sessionsPageData struct {
	Name, Endpoints, CSRF string
	Active, Ended         []sessionCard
	Others                int
}

var endReasons = map[string]string{
	session.EndLogout: "Signed out", session.EndRevoked: "Signed out remotely",
	session.EndLimit: "Replaced by a newer sign-in", session.EndIPChange: "Ended: new network",
	session.EndCountryChange: "Ended: new country", session.EndExpired: "Expired",
}

func (h *Handler) renderSessions(w http.ResponseWriter, r *http.Request, cur *session.Session, list []*session.Session, now time.Time) error {
	data := sessionsPageData{Name: cur.Name, Endpoints: h.Endpoints, CSRF: csrfToken(cur)}
	if data.Name == "" {
		data.Name = cur.UserID
	}
	for _, s := range list {
		v := h.policy.View(s, now)
		c := sessionCard{
			ID: v.ID, Device: orDefault(v.Device, "Unknown Device"), Kind: v.DeviceType,
			Browser: orDefault(v.Browser, "Unknown browser"), OS: orDefault(v.OS, "unknown OS"),
			Location: "Unknown location", IP: orDefault(v.IP, "unknown"),
			SignedIn: relTime(v.CreatedAt, now), SignedInAt: v.CreatedAt.UTC().Format(time.RFC1123),
			LastActive: relTime(v.LastActiveAt, now), LastAt: v.LastActiveAt.UTC().Format(time.RFC1123),
			Current: v.ID == cur.ID,
		}
		switch {
		case v.City != "" && v.Country != "":
			c.Location = v.City + ", " + v.Country
		case v.Country != "":
			c.Location = v.Country
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
	return sessionsTemplate.Execute(w, data)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
