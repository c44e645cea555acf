// Package endtext says in words why a session ended, keyed by the
// end_reason the gateway adds to its sign-in redirect as ?session_ended=:
// the gateway's own sign-in page and the demo app show the same sentences
// (the README's table).
package endtext

// Messages by end_reason.
var Messages = map[string]string{
	"revoked":        "You were signed out from another device.",
	"limit":          "You were signed out because you signed in on too many devices.",
	"expired":        "Your session expired. Please sign in again.",
	"ip_change":      "You were signed out because your network changed.",
	"country_change": "You were signed out because you signed in from another country.",
	"idp":            "Your identity provider signed you out.",
	"logout":         "You signed out.",
}
