package sessionauth

import (
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// sessionJSON is a session as the admin API and the self-service
// endpoints show it (SPEC section 5). Never the token.
type sessionJSON struct {
	ID              string  `json:"id"`
	UserID          string  `json:"user_id"`
	Email           string  `json:"email"`
	Active          bool    `json:"active"`
	Current         *bool   `json:"current,omitempty"`
	IPAddress       string  `json:"ip_address"`
	LoginIPAddress  string  `json:"login_ip_address"`
	UserAgent       string  `json:"user_agent"`
	DeviceName      string  `json:"device_name"`
	DeviceType      string  `json:"device_type"`
	Browser         string  `json:"browser"`
	OS              string  `json:"os"`
	Country         string  `json:"country"`
	City            string  `json:"city"`
	CreatedAt       string  `json:"created_at"`
	LastActiveAt    string  `json:"last_active_at"`
	ExpiresAt       string  `json:"expires_at"`
	EndedAt         *string `json:"ended_at"`
	EndReason       *string `json:"end_reason"`
	AuthMethod      string  `json:"auth_method"`
	AuthenticatedAt string  `json:"authenticated_at"`
	Kind            string  `json:"kind"`
	Name            string  `json:"name,omitempty"` // a token's
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// toJSON shows s under policy p at now; currentID, when not empty, marks
// the caller's own session (self-service answers only).
func toJSON(s *session.Session, p session.Policy, now time.Time, currentID string) sessionJSON {
	v := p.View(s, now)
	j := sessionJSON{
		ID: v.ID, UserID: v.UserID, Email: v.Email, Active: v.Active(),
		IPAddress: v.IP, LoginIPAddress: v.LoginIP, UserAgent: v.UserAgent,
		DeviceName: v.Device, DeviceType: v.DeviceType, Browser: v.Browser, OS: v.OS,
		Country: v.Country, City: v.City,
		CreatedAt: rfc3339(v.CreatedAt), LastActiveAt: rfc3339(v.LastActiveAt),
		ExpiresAt:  rfc3339(p.ExpiresAt(v)),
		AuthMethod: v.AuthMethod, AuthenticatedAt: rfc3339(v.AuthenticatedOrCreated()),
		Kind: v.KindOrDefault(), Name: v.Label,
	}
	if !v.Active() {
		ended, reason := rfc3339(v.EndedAt), v.EndReason
		j.EndedAt, j.EndReason = &ended, &reason
		j.ExpiresAt = ended
	}
	if currentID != "" {
		cur := v.ID == currentID
		j.Current = &cur
	}
	return j
}
