package sessionauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/session"
)

func init() {
	caddy.RegisterModule(Require{})
}

// Require is the session_require middleware: per-route rules on the
// identity that session_auth established earlier in the route. It never
// validates a credential itself, so a rule costs no store round trip;
// Caddy's matchers say where each rule holds.
type Require struct {
	// The user must be one of these user ids.
	Users []string `json:"users,omitempty"`

	// The user must hold at least one of these roles.
	Roles []string `json:"roles,omitempty"`

	// The user must have proved who they are (signed in or stepped up)
	// within this long.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// The session must carry none of these risk flags; an empty list
	// refuses any flag at all.
	NoRisk *[]string `json:"no_risk,omitempty"`

	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Require) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.session_require",
		New: func() caddy.Module { return new(Require) },
	}
}

// Rule kinds, the label values of the denied metric.
const (
	ruleUsers  = "users"
	ruleRoles  = "roles"
	ruleMaxAge = "max_age"
	ruleNoRisk = "no_risk"
)

var riskFlags = []string{session.FlagIPChanged, session.FlagCountryChanged, session.FlagNewDevice,
	session.FlagNewCountry, session.FlagImpossibleTravel, session.FlagConcurrentCountries}

// Provision sets the rule up; a refusal is logged with the reason first,
// as session_auth's is.
func (q *Require) Provision(ctx caddy.Context) error {
	q.logger = ctx.Logger()
	for i, u := range q.Users {
		q.Users[i] = userIDOf(u) // as sessions store them: email ids in lower case
	}
	err := q.check()
	if err != nil {
		q.logger.Error("session_require: " + err.Error())
	}
	return err
}

func (q *Require) check() error {
	if len(q.Users) == 0 && len(q.Roles) == 0 && q.MaxAge == 0 && q.NoRisk == nil {
		return errors.New("session_require needs at least one of users, roles, max_age, no_risk")
	}
	if q.MaxAge < 0 {
		return errors.New("max_age must be positive")
	}
	if q.NoRisk != nil {
		for _, f := range *q.NoRisk {
			if err := oneOf("no_risk flag", f, riskFlags...); err != nil {
				return err
			}
		}
	}
	for _, v := range append(slices.Clone(q.Users), q.Roles...) {
		if strings.TrimSpace(v) == "" || strings.Contains(v, ",") {
			return fmt.Errorf("%q is not a user id or role (no commas or blanks)", v)
		}
	}
	return nil
}

// identity is what session_auth proved about a request, for the
// session_require handlers after it in the route.
type identity struct {
	h     *Handler
	sess  *session.Session // nil: session_auth is optional and there was none
	risk  string           // the flags as X-Auth-Risk says them
	login bool             // a login path: no session, and no rule applies
}

type identityKey struct{}

// withIdentity hands the identity to later handlers of the route through
// the request's context (not Caddy's vars, which placeholders can print).
func withIdentity(r *http.Request, id *identity) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
}

func identityOf(r *http.Request) *identity {
	id, _ := r.Context().Value(identityKey{}).(*identity)
	return id
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (q *Require) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	id := identityOf(r)
	if id == nil {
		// No session_auth ran before this rule on this request: fail
		// closed, since nothing proved who the client is.
		if c := q.logger.Check(zap.ErrorLevel, "session_require without session_auth before it on this request: refused; put session_auth first in the route"); c != nil {
			c.Write(zap.String("path", sanitise(r.URL.Path, 256)))
		}
		return answer(w, r, problemForbidden)
	}
	if id.login {
		return next.ServeHTTP(w, r)
	}
	if done, err := q.judge(w, r, id); done {
		return err
	}
	return next.ServeHTTP(w, r)
}

// passes reports whether the identity meets the rule.
func (q *Require) passes(id *identity, now time.Time) bool {
	if id.login {
		return true
	}
	if id.sess == nil {
		return false
	}
	failed, _ := q.failing(id, now)
	return failed == ""
}

// judge answers a request whose identity does not meet the rule, as the
// rule answers; done reports that it did (else the request goes on).
func (q *Require) judge(w http.ResponseWriter, r *http.Request, id *identity) (done bool, err error) {
	h := id.h
	if id.sess == nil {
		return true, h.unauthenticated(w, r, false, "")
	}
	failed, curable := q.failing(id, h.now())
	if failed == "" {
		return false, nil
	}
	return true, q.refuse(w, r, id, failed, curable)
}

// refuse answers a signed-in request that fails the rule kind failed.
func (q *Require) refuse(w http.ResponseWriter, r *http.Request, id *identity, failed string, curable bool) error {
	h := id.h
	stepUp := curable && h.signInEnabled && browserNavigation(r) && !wantsJSON(r)
	q.denied(r, id, failed, stepUp, "request refused by session_require")
	if stepUp {
		w.Header().Set("Location", h.Endpoints+"/sign-in?step_up=1&next="+url.QueryEscape(safeNext(originalURI(r))))
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusSeeOther)
		return nil
	}
	if !browserNavigation(r) || wantsJSON(r) {
		return writeJSON(w, http.StatusForbidden, errorBody{"forbidden"})
	}
	return forbiddenPage(w, r, h.Endpoints, id.sess, q.wants(id, failed, h.now()))
}

// denied counts and logs, as msg, a refusal by the rule kind failed.
func (q *Require) denied(r *http.Request, id *identity, failed string, stepUp bool, msg string) {
	id.h.metrics.denied(failed)
	if c := q.logger.Check(zap.InfoLevel, msg); c != nil {
		c.Write(zap.String("rule", q.describe(failed)), zap.String("user_id", id.sess.UserID),
			zap.String("session_id", id.sess.ID), zap.String("method", r.Method),
			zap.String("path", sanitise(r.URL.Path, 256)), zap.Bool("step_up", stepUp))
	}
}

// failing returns the first rule kind the identity does not meet (empty
// when all hold) and whether a step-up could cure what fails: a fresh
// sign-in answers max_age and no_risk, never users or roles.
func (q *Require) failing(id *identity, now time.Time) (rule string, curable bool) {
	s := id.sess
	if len(q.Users) > 0 && !slices.Contains(q.Users, s.UserID) {
		return ruleUsers, false
	}
	if len(q.Roles) > 0 && !holdsAnyRole(s.Roles, q.Roles) {
		return ruleRoles, false
	}
	if q.MaxAge > 0 && now.Sub(s.AuthenticatedOrCreated()) > time.Duration(q.MaxAge) {
		return ruleMaxAge, true
	}
	if q.NoRisk != nil {
		if len(*q.NoRisk) == 0 && id.risk != "" {
			return ruleNoRisk, true
		}
		for _, f := range *q.NoRisk {
			if session.HasFlag(id.risk, f) {
				return ruleNoRisk, true
			}
		}
	}
	return "", false
}

// holdsAnyRole: roles is the session's comma-separated list.
func holdsAnyRole(roles string, wanted []string) bool {
	for role := range strings.SplitSeq(roles, ",") {
		if slices.Contains(wanted, strings.TrimSpace(role)) {
			return true
		}
	}
	return false
}

// describe spells one rule of q as the Caddyfile says it, for the log.
func (q *Require) describe(rule string) string {
	switch rule {
	case ruleUsers:
		return "users " + strings.Join(q.Users, " ")
	case ruleRoles:
		return "roles " + strings.Join(q.Roles, " ")
	case ruleMaxAge:
		return "max_age " + time.Duration(q.MaxAge).String()
	case ruleNoRisk:
		return strings.TrimSpace("no_risk " + strings.Join(*q.NoRisk, " "))
	}
	return rule
}

var problemForbidden = problem{http.StatusForbidden, "forbidden",
	"You don't have access to this page",
	"This page needs a sign-in that this site could not check. The site's operator has been told in the log."}

// Interface guards
var (
	_ caddy.Provisioner           = (*Require)(nil)
	_ caddyhttp.MiddlewareHandler = (*Require)(nil)
)
