package session

import "google.golang.org/protobuf/encoding/protowire"

// The same few words fill several fields of every record and event (the
// device type, browser, OS, how the session signed in, what an event
// is). The file writes a string field whose value is one of
// commonValues as its index, under the field's number plus
// commonField: 3 bytes for "password" instead of 10. The list is part
// of the file's format: values are only ever added at its end, never
// changed or moved. (A version before this one skips such fields.)
var commonValues = [...]string{
	// Device types, names, browsers and OSes (geo.ParseUserAgent).
	"desktop", "mobile", "tablet", "bot", "unknown",
	"iPhone", "iPad", "Android", "Mac", "Windows PC", "Linux", "Chromebook", "Unknown Device",
	"Chrome", "Safari", "Firefox", "Edge", "Opera", "Samsung Internet", "Brave", "Vivaldi", "Chromium", "Unknown Browser",
	"iOS", "iPadOS", "macOS", "Windows", "ChromeOS", "Unknown OS",
	// How a session signed in, its kind, and who ended it.
	MethodPassword, "password+totp", "passkey", "oidc", "idp", "browser", "token", "handoff",
	"self", "admin", "upstream", "limit", "policy", "link",
	// Event types and end reasons.
	EventLogin, EventLogout, "revoke", "revoked", "ip_change", "country_change", "risk", "rate_limited",
	"token_created", "login_failed", "step_up", "expired",
}

// commonField is added to a field's number for a value of commonValues.
const commonField protowire.Number = 2000

// commonIndex is the index of s in commonValues, or -1.
var commonIndex = func() map[string]int {
	m := make(map[string]int, len(commonValues))
	for i, v := range commonValues {
		if _, dup := m[v]; !dup {
			m[v] = i
		}
	}
	return m
}()

type commonString string

// appendCommon writes s as its index under num plus commonField, if s is
// one of commonValues.
func appendCommon(b []byte, num protowire.Number, s string) ([]byte, bool) {
	i, ok := commonIndex[s]
	if !ok {
		return b, false
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num+commonField, protowire.VarintType), uint64(i)), true
}

// consumeCommon reads an index into p: a value of a later version's list
// reads as "" rather than making the whole record unreadable.
func consumeCommon(typ protowire.Type, b []byte, p *commonString) int {
	i, n := protowire.ConsumeVarint(b)
	if typ != protowire.VarintType || n < 0 {
		return -1
	}
	*p = ""
	if i < uint64(len(commonValues)) {
		*p = commonString(commonValues[i])
	}
	return n
}
