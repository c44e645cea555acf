package sessionauth

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// sessionAuthSeen marks, in the Caddyfile adapter's block state, that a
// session_auth came earlier in this block or an enclosing one.
const sessionAuthSeen = "session_auth.seen"

func parseRequireCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var q Require
	if err := q.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	// The rule reads the identity session_auth sets; with none before it
	// in the block (or an enclosing one), every request would be refused.
	// Where blocks of one site interleave this is the best Caddy can tell.
	if seen, _ := h.BlockState[sessionAuthSeen].(bool); !seen {
		h.Reset()
		h.Next()
		return nil, h.Errf("session_require needs a session_auth before it in this block or an enclosing one: it reads the identity session_auth proved")
	}
	return &q, nil
}

// UnmarshalCaddyfile sets up the rule from Caddyfile tokens. Syntax:
//
//	session_require [<matcher>] {
//	    users <id>...
//	    roles <role>...
//	    max_age <duration>
//	    no_risk [<flag>...]
//	}
//	session_require [<matcher>] users|roles|max_age|no_risk <args>...
//
// Within a rule each kind is "any of" its values and all kinds given must
// hold. Unknown and repeated kinds and bad values are errors with the
// file and line.
func (q *Require) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	seen := map[string]bool{}
	one := func() error {
		kind := d.Val()
		if seen[kind] {
			return d.Errf("%s given more than once", kind)
		}
		seen[kind] = true
		switch kind {
		case "users":
			q.Users = d.RemainingArgs()
			if len(q.Users) == 0 {
				return d.ArgErr()
			}
		case "roles":
			q.Roles = d.RemainingArgs()
			if len(q.Roles) == 0 {
				return d.ArgErr()
			}
		case "max_age":
			if err := durationArg(d, &q.MaxAge); err != nil {
				return err
			}
			if q.MaxAge == 0 {
				return d.Errf("max_age must be positive")
			}
		case "no_risk":
			flags := d.RemainingArgs()
			if flags == nil {
				flags = []string{}
			}
			q.NoRisk = &flags
		default:
			return d.Errf("unknown session_require rule %q (users, roles, max_age, no_risk)", kind)
		}
		return nil
	}
	if d.NextArg() {
		if err := one(); err != nil {
			return err
		}
		if d.NextBlock(d.Nesting()) {
			return d.Errf("session_require takes a rule on its line or a block, not both")
		}
	} else {
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			if err := one(); err != nil {
				return err
			}
		}
	}
	if err := q.check(); err != nil {
		return d.Errf("%v", err)
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*Require)(nil)
