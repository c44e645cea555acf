package sessionauth

import (
	"net/http"
	"slices"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// forbiddenData is what the 403 page shows: who is signed in, and, when
// the rule that failed is one a new sign-in meets (max_age, no_risk),
// what it wants.
type forbiddenData struct {
	Who, UserID, Endpoints, Next string
	ruleWants
}

// ruleWants says in words what a failed max_age or no_risk rule wants;
// zero for users and roles, which only another account meets.
type ruleWants struct {
	Rule     string   // ruleMaxAge or ruleNoRisk
	MaxAge   string   // "10 minutes"
	SignedIn string   // when the user last proved who they are: "2 hours ago"
	Risks    []string // the refused flags the session carries, in words
}

// riskWords says each risk flag as the 403 page does.
var riskWords = map[string]string{
	session.FlagNewDevice:           "a sign-in from a device new to your account",
	session.FlagNewCountry:          "a sign-in from a country new to your account",
	session.FlagIPChanged:           "a change of network since you signed in",
	session.FlagCountryChanged:      "a change of country since you signed in",
	session.FlagImpossibleTravel:    "a move between places faster than travel allows",
	session.FlagConcurrentCountries: "sessions in other countries at the same time",
}

// wants describes the rule kind failed of q for the identity id.
func (q *Require) wants(id *identity, failed string, now time.Time) ruleWants {
	switch failed {
	case ruleMaxAge:
		return ruleWants{Rule: failed, MaxAge: humanDuration(time.Duration(q.MaxAge)),
			SignedIn: relTime(id.sess.AuthenticatedOrCreated(), now)}
	case ruleNoRisk:
		w := ruleWants{Rule: failed}
		for _, f := range riskFlags {
			refused := len(*q.NoRisk) == 0 || slices.Contains(*q.NoRisk, f)
			if refused && session.HasFlag(id.risk, f) {
				w.Risks = append(w.Risks, riskWords[f])
			}
		}
		return w
	}
	return ruleWants{}
}

// forbiddenPage tells a signed-in person in words that this page is not
// for them, who they are signed in as, and what would open it: another
// account, or (wants) a new sign-in.
func forbiddenPage(w http.ResponseWriter, r *http.Request, endpoints string, s *session.Session, wants ruleWants) error {
	htmlHeaders(w)
	// same-origin: the sign-out form must carry this origin (see renderSessions).
	w.Header().Set("Referrer-Policy", "same-origin")
	w.WriteHeader(http.StatusForbidden)
	if r.Method == http.MethodHead {
		return nil
	}
	return renderPage(w, pageForbidden, forbiddenData{
		Who: orDefault(s.Name, s.UserID), UserID: s.UserID, Endpoints: endpoints,
		Next: safeNext(originalURI(r)), ruleWants: wants,
	})
}
