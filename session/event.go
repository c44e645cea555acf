package session

import "time"

// Audit event types (SPEC section 7).
const (
	EventLogin         = "login"
	EventLogout        = "logout"
	EventRevoke        = "revoke"
	EventIPChange      = "ip_change"
	EventCountryChange = "country_change"
	EventRisk          = "risk"
	EventRateLimited   = "rate_limited"
	EventTokenCreated  = "token_created"
	EventLoginFailed   = "login_failed"
	EventStepUp        = "step_up"
)

// Event is one audit record. Stores write it in the same operation as the
// change it describes, so a crash between the two cannot lose it.
type Event struct {
	Type       string    `json:"type"`
	At         time.Time `json:"at"`
	UserID     string    `json:"user_id"`
	SessionID  string    `json:"session_id,omitempty"`
	IP         string    `json:"ip_address,omitempty"`
	Country    string    `json:"country,omitempty"`
	City       string    `json:"city,omitempty"`
	DeviceName string    `json:"device_name,omitempty"`
	Browser    string    `json:"browser,omitempty"`
	OS         string    `json:"os,omitempty"`
	DeviceID   string    `json:"device_id,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Actor      string    `json:"actor,omitempty"`
}

// EndEvent describes the end of s for the given reason and actor. A
// logout by the user is a "logout" event; every other end is a "revoke".
func EndEvent(s *Session, at time.Time, reason, actor string) Event {
	typ := EventRevoke
	if reason == EndLogout {
		typ = EventLogout
	}
	e := eventFor(s, typ, at)
	e.Reason, e.Actor = reason, actor
	return e
}

// StepUpEvent describes a step-up of s: the user proved who they are
// again, by method (password, password+totp, oidc:<name>), from where the
// session is now.
func StepUpEvent(s *Session, at time.Time, method string) Event {
	e := eventFor(s, EventStepUp, at)
	e.Reason = method
	return e
}

// Proof is what a step-up proved (Store.StepUp).
type Proof struct {
	At     time.Time
	Method string // password, password+totp, oidc:<name>: the step_up event's reason
	// A provider's step-up: its session id (sid) now, when it gave one
	// (empty keeps the session's), which back-channel logout names.
	// CheckedAt is left to recheck, whose MarkChecked compares it.
	ProviderSID string
}

// stepUp is what Store.StepUp changes in an active session. Lua twin:
// stepUpScript (redis_scripts.go).
func stepUp(s *Session, pr Proof) {
	at := pr.At
	if pr.ProviderSID != "" {
		s.ProviderSID = pr.ProviderSID
	}
	s.AuthenticatedAt = at
	if at.Equal(s.CreatedAt) {
		s.AuthenticatedAt = time.Time{} // zero reads as CreatedAt, as Redis keeps it
	}
	s.Risk = ""
	s.StepUpIP, s.StepUpCountry = s.IP, s.Country
}

// LoginEvent describes the creation of s.
func LoginEvent(s *Session) Event { return eventFor(s, EventLogin, s.CreatedAt) }

func eventFor(s *Session, typ string, at time.Time) Event {
	return Event{
		Type: typ, At: at.UTC(), UserID: s.UserID, SessionID: s.ID,
		IP: s.IP, Country: s.Country, City: s.City,
		DeviceName: s.Device, Browser: s.Browser, OS: s.OS, DeviceID: s.DeviceID,
	}
}
