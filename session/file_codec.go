package session

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// The file's sessions, events and histories are written in a compact
// binary form: a marker byte, then protobuf's wire format (tag, value)
// for every field that is set, the purge time first so that the sweep
// reads it without decoding the rest. A JSON value (as every record was
// once written) starts with '{', so both are read: a file written
// before keeps working, and each record is written anew in binary the
// next time it changes. JSON spelled every field's name in every
// record; this costs a byte per field, and times take 6 bytes.

// binaryMarker starts every binary value.
const binaryMarker = 0x01

// isBinary: v was written by this codec (else it is JSON).
func isBinary(v []byte) bool { return len(v) > 0 && v[0] == binaryMarker }

// wireField is one field of T in the binary form: its number and where
// it lives in a T. A number is never reused for another field.
type wireField[T any] struct {
	num protowire.Number
	ptr func(*T) any // *string, *time.Time, *time.Duration, *float64, *bool, *[32]byte, *map[string]time.Time, **fileLoc
}

// Field 1 is the purge time in every form (see purgeOf).
const purgeField protowire.Number = 1

// recordWire is a record as written: its id is the key, and a field
// that repeats another (the email that is the user id, the address and
// country signed in from while the session is still there) is a flag.
type recordWire struct {
	fileRecord
	emailIsUser, loginIPIsIP, loginCountryIsCountry bool
	agentShort                                      string // the user agent's short form (file_agent.go)
}

var recordFields = []wireField[recordWire]{
	{purgeField, func(r *recordWire) any { return &r.PurgeAt }},
	// 2 was the id, which the key holds.
	{3, func(r *recordWire) any { return &r.UserID }},
	{4, func(r *recordWire) any { return &r.TokenHash }},
	{5, func(r *recordWire) any { return &r.Email }},
	{6, func(r *recordWire) any { return &r.Name }},
	{7, func(r *recordWire) any { return &r.Roles }},
	{8, func(r *recordWire) any { return &r.IP }},
	{9, func(r *recordWire) any { return &r.LoginIP }},
	{10, func(r *recordWire) any { return &r.UserAgent }},
	{11, func(r *recordWire) any { return &r.Device }},
	{12, func(r *recordWire) any { return &r.DeviceType }},
	{13, func(r *recordWire) any { return &r.Browser }},
	{14, func(r *recordWire) any { return &r.OS }},
	{15, func(r *recordWire) any { return &r.Country }},
	{16, func(r *recordWire) any { return &r.City }},
	{17, func(r *recordWire) any { return &r.Lat }},
	{18, func(r *recordWire) any { return &r.Lon }},
	{19, func(r *recordWire) any { return &r.HasCoord }},
	{20, func(r *recordWire) any { return &r.LoginCountry }},
	{21, func(r *recordWire) any { return &r.DeviceID }},
	{22, func(r *recordWire) any { return &r.Risk }},
	{23, func(r *recordWire) any { return &r.Kind }},
	{24, func(r *recordWire) any { return &r.Label }},
	{25, func(r *recordWire) any { return &r.AuthMethod }},
	{26, func(r *recordWire) any { return &r.TokenLifetime }},
	{27, func(r *recordWire) any { return &r.Parent }},
	{28, func(r *recordWire) any { return &r.AuthenticatedAt }},
	{29, func(r *recordWire) any { return &r.StepUpIP }},
	{30, func(r *recordWire) any { return &r.StepUpCountry }},
	{31, func(r *recordWire) any { return &r.Provider }},
	{32, func(r *recordWire) any { return &r.Subject }},
	{33, func(r *recordWire) any { return &r.ProviderSID }},
	{34, func(r *recordWire) any { return &r.SealedTokens }},
	{35, func(r *recordWire) any { return &r.CheckedAt }},
	{36, func(r *recordWire) any { return &r.CreatedAt }},
	{37, func(r *recordWire) any { return &r.LastActiveAt }},
	{38, func(r *recordWire) any { return &r.EndedAt }},
	{39, func(r *recordWire) any { return &r.EndReason }},
	{40, func(r *recordWire) any { return &r.EndedBy }},
	{41, func(r *recordWire) any { return &r.emailIsUser }},
	{42, func(r *recordWire) any { return &r.loginIPIsIP }},
	{43, func(r *recordWire) any { return &r.loginCountryIsCountry }},
	{44, func(r *recordWire) any { return &r.Site }},
	{45, func(r *recordWire) any { return &r.agentShort }},
	// OthersActive is not stored (see putRecord).
}

var eventFields = []wireField[eventWire]{
	{purgeField, func(e *eventWire) any { return &e.PurgeAt }},
	{2, func(e *eventWire) any { return &e.E.Type }},
	{3, func(e *eventWire) any { return &e.E.At }},
	{4, func(e *eventWire) any { return &e.E.UserID }},
	{5, func(e *eventWire) any { return &e.E.SessionID }},
	{6, func(e *eventWire) any { return &e.E.IP }},
	{7, func(e *eventWire) any { return &e.E.Country }},
	{8, func(e *eventWire) any { return &e.E.City }},
	{9, func(e *eventWire) any { return &e.E.DeviceName }},
	{10, func(e *eventWire) any { return &e.E.Browser }},
	{11, func(e *eventWire) any { return &e.E.OS }},
	{12, func(e *eventWire) any { return &e.E.DeviceID }},
	{13, func(e *eventWire) any { return &e.E.Reason }},
	{14, func(e *eventWire) any { return &e.E.Actor }},
	{15, func(e *eventWire) any { return &e.userIsKey }},
}

var historyFields = []wireField[fileHistory]{
	{purgeField, func(h *fileHistory) any { return &h.PurgeAt }},
	{2, func(h *fileHistory) any { return &h.Devices }},
	{3, func(h *fileHistory) any { return &h.Countries }},
	{4, func(h *fileHistory) any { return &h.LastLoc }},
}

var locFields = []wireField[fileLoc]{
	{1, func(l *fileLoc) any { return &l.Lat }},
	{2, func(l *fileLoc) any { return &l.Lon }},
	{3, func(l *fileLoc) any { return &l.At }},
}

// A map entry: the key, then its time.
var entryKey, entryTime protowire.Number = 1, 2

func encodeRecord(r *fileRecord) []byte {
	w := recordWire{fileRecord: *r}
	w.ID, w.Hash = "", nil
	if w.Email != "" && w.Email == w.UserID {
		w.Email, w.emailIsUser = "", true
	}
	if w.LoginIP != "" && w.LoginIP == w.IP {
		w.LoginIP, w.loginIPIsIP = "", true
	}
	if w.LoginCountry != "" && w.LoginCountry == w.Country {
		w.LoginCountry, w.loginCountryIsCountry = "", true
	}
	if short := shortAgent(w.UserAgent); short != "" {
		w.UserAgent, w.agentShort = "", short
	}
	return appendFields([]byte{binaryMarker}, recordFields, &w)
}

// decodeRecordValue reads the session record v of id in either form;
// nil when v is neither.
func decodeRecordValue(id string, v []byte) *fileRecord {
	if isBinary(v) {
		var w recordWire
		if !consumeFields(v[1:], recordFields, &w) {
			return nil
		}
		r := w.fileRecord
		r.ID = id
		if w.emailIsUser {
			r.Email = r.UserID
		}
		if w.loginIPIsIP {
			r.LoginIP = r.IP
		}
		if w.loginCountryIsCountry {
			r.LoginCountry = r.Country
		}
		if w.agentShort != "" {
			r.UserAgent, _ = longAgent(w.agentShort) // a later version's phrase: no agent rather than no session
		}
		return &r
	}
	var r fileRecord
	if json.Unmarshal(v, &r) != nil || len(r.Hash) != len(r.TokenHash) {
		return nil
	}
	copy(r.TokenHash[:], r.Hash)
	r.Hash = nil
	return &r
}

// eventWire is an event as written: the user id is a flag when it is
// the user of the trail (the key) it is kept in.
type eventWire struct {
	fileEvent
	userIsKey bool
}

// encodeFileEvent writes e, kept in user's trail.
func encodeFileEvent(e *fileEvent, user string) []byte {
	w := eventWire{fileEvent: *e}
	if w.E.UserID != "" && w.E.UserID == user {
		w.E.UserID, w.userIsKey = "", true
	}
	return appendFields([]byte{binaryMarker}, eventFields, &w)
}

// decodeFileEvent reads an event of user's trail in either form.
func decodeFileEvent(user string, v []byte) (fileEvent, bool) {
	if isBinary(v) {
		var w eventWire
		if !consumeFields(v[1:], eventFields, &w) {
			return fileEvent{}, false
		}
		if w.userIsKey {
			w.E.UserID = user
		}
		return w.fileEvent, true
	}
	var e fileEvent
	return e, json.Unmarshal(v, &e) == nil
}

func encodeHistory(h *fileHistory) []byte {
	return appendFields([]byte{binaryMarker}, historyFields, h)
}

func decodeHistory(v []byte) (fileHistory, bool) {
	var h fileHistory
	if isBinary(v) {
		return h, consumeFields(v[1:], historyFields, &h)
	}
	return h, json.Unmarshal(v, &h) == nil
}

// purgeOf reads the purge time of a binary value without decoding the
// rest (false: not binary, or no purge time first).
func purgeOf(v []byte) (time.Time, bool) {
	if !isBinary(v) {
		return time.Time{}, false
	}
	num, typ, n := protowire.ConsumeTag(v[1:])
	if n < 0 || num != purgeField || typ != protowire.VarintType {
		return time.Time{}, false
	}
	code, m := protowire.ConsumeVarint(v[1+n:])
	if m < 0 {
		return time.Time{}, false
	}
	return timeOfCode(code), true
}

// appendFields appends every field of v that is set, in table order.
func appendFields[T any](b []byte, fields []wireField[T], v *T) []byte {
	for _, f := range fields {
		switch p := f.ptr(v).(type) {
		case *string:
			if *p == "" {
				break
			}
			if isHexID(*p) {
				raw, _ := hex.DecodeString(*p)
				b = protowire.AppendBytes(protowire.AppendTag(b, f.num+hexField, protowire.BytesType), raw)
				break
			}
			if c, ok := appendCommon(b, f.num, *p); ok { // file_common.go
				b = c
				break
			}
			b = protowire.AppendString(protowire.AppendTag(b, f.num, protowire.BytesType), *p)
		case *time.Time:
			b = appendTime(b, f.num, *p)
		case *time.Duration:
			if *p != 0 {
				b = protowire.AppendVarint(protowire.AppendTag(b, f.num, protowire.VarintType), protowire.EncodeZigZag(int64(*p)))
			}
		case *float64:
			if *p == 0 {
				break
			}
			if c, ok := appendScaled(b, f.num, *p); ok { // file_scaled.go
				b = c
				break
			}
			b = protowire.AppendFixed64(protowire.AppendTag(b, f.num, protowire.Fixed64Type), math.Float64bits(*p))
		case *bool:
			if *p {
				b = protowire.AppendVarint(protowire.AppendTag(b, f.num, protowire.VarintType), 1)
			}
		case *[32]byte:
			if *p != [32]byte{} {
				b = protowire.AppendBytes(protowire.AppendTag(b, f.num, protowire.BytesType), p[:])
			}
		case *map[string]time.Time:
			for k, t := range *p {
				entry := appendFields(nil, mapEntryFields, &mapEntry{k, t})
				b = protowire.AppendBytes(protowire.AppendTag(b, f.num, protowire.BytesType), entry)
			}
		case **fileLoc:
			if *p != nil {
				b = protowire.AppendBytes(protowire.AppendTag(b, f.num, protowire.BytesType), appendFields(nil, locFields, *p))
			}
		default:
			panic("wireField: no encoding for this type")
		}
	}
	return b
}

// consumeFields reads b into v. A field of a number it does not know is
// skipped (a later version's); a known field of the wrong wire type, or
// bytes cut short, make the whole value unreadable.
func consumeFields[T any](b []byte, fields []wireField[T], v *T) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		var ptr any
		for _, f := range fields {
			if f.num == num {
				ptr = f.ptr(v)
				break
			}
			if f.num+hexField == num {
				if p, ok := f.ptr(v).(*string); ok {
					ptr = (*hexString)(p)
				}
				break
			}
			if f.num+scaledField == num {
				if p, ok := f.ptr(v).(*float64); ok {
					ptr = (*scaledFloat)(p)
				}
				break
			}
			if f.num+commonField == num {
				if p, ok := f.ptr(v).(*string); ok {
					ptr = (*commonString)(p)
				}
				break
			}
		}
		if ptr == nil {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return false
			}
			b = b[n:]
			continue
		}
		if n = consumeValue(typ, b, ptr); n < 0 {
			return false
		}
		b = b[n:]
	}
	return true
}

// consumeValue reads one value of wire type typ into ptr and returns the
// bytes it took (negative: unreadable).
func consumeValue(typ protowire.Type, b []byte, ptr any) int {
	switch p := ptr.(type) {
	case *string:
		s, n := protowire.ConsumeString(b)
		if typ != protowire.BytesType {
			return -1
		}
		*p = s
		return n
	case *hexString:
		x, n := protowire.ConsumeBytes(b)
		if typ != protowire.BytesType {
			return -1
		}
		*p = hexString(hex.EncodeToString(x))
		return n
	case *scaledFloat:
		return consumeScaled(typ, b, p)
	case *commonString:
		return consumeCommon(typ, b, p)
	case *time.Time:
		return consumeTime(typ, b, p)
	case *time.Duration:
		x, n := protowire.ConsumeVarint(b)
		if typ != protowire.VarintType {
			return -1
		}
		*p = time.Duration(protowire.DecodeZigZag(x))
		return n
	case *float64:
		x, n := protowire.ConsumeFixed64(b)
		if typ != protowire.Fixed64Type {
			return -1
		}
		*p = math.Float64frombits(x)
		return n
	case *bool:
		x, n := protowire.ConsumeVarint(b)
		if typ != protowire.VarintType {
			return -1
		}
		*p = x != 0
		return n
	case *[32]byte:
		x, n := protowire.ConsumeBytes(b)
		if typ != protowire.BytesType || len(x) != len(p) {
			return -1
		}
		copy(p[:], x)
		return n
	case *map[string]time.Time:
		x, n := protowire.ConsumeBytes(b)
		if typ != protowire.BytesType {
			return -1
		}
		var e mapEntry
		if !consumeFields(x, mapEntryFields, &e) {
			return -1
		}
		if *p == nil {
			*p = map[string]time.Time{}
		}
		(*p)[e.key] = e.at
		return n
	case **fileLoc:
		x, n := protowire.ConsumeBytes(b)
		if typ != protowire.BytesType {
			return -1
		}
		var l fileLoc
		if !consumeFields(x, locFields, &l) {
			return -1
		}
		*p = &l
		return n
	}
	return -1
}

// Ids (of sessions, devices) are lower-case hex: written as the bytes
// they spell, under their field's number plus hexField, they take half
// the room.
const hexField protowire.Number = 1000

type hexString string

// isHexID: s is lower-case hex of whole bytes, at least 8 of them (what
// hex.EncodeToString gives back exactly).
func isHexID(s string) bool {
	if len(s) < 16 || len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

type mapEntry struct {
	key string
	at  time.Time
}

var mapEntryFields = []wireField[mapEntry]{
	{entryKey, func(e *mapEntry) any { return &e.key }},
	{entryTime, func(e *mapEntry) any { return &e.at }},
}

// A time is a varint: milliseconds since 1970 shifted left by one (6
// bytes for the times a store holds, which are all whole milliseconds),
// or nanoseconds with the low bit set. A time outside what nanoseconds
// since 1970 can count (before 1970, after 2261) is time's own binary
// form, as bytes. The zero time is not written.
func appendTime(b []byte, num protowire.Number, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	if y := t.Year(); y < 1970 || y > 2261 {
		raw, err := t.MarshalBinary()
		if err != nil { // a zone offset time cannot write: the same instant in UTC
			raw, _ = t.UTC().MarshalBinary()
		}
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), raw)
	}
	ns := t.UnixNano()
	code := uint64(ns)<<1 | 1
	if ns%int64(time.Millisecond) == 0 {
		code = uint64(ns/int64(time.Millisecond)) << 1
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), code)
}

func timeOfCode(code uint64) time.Time {
	if code&1 == 0 {
		return time.UnixMilli(int64(code >> 1)).UTC()
	}
	return time.Unix(0, int64(code>>1)).UTC()
}

func consumeTime(typ protowire.Type, b []byte, p *time.Time) int {
	switch typ {
	case protowire.VarintType:
		code, n := protowire.ConsumeVarint(b)
		if n >= 0 {
			*p = timeOfCode(code)
		}
		return n
	case protowire.BytesType:
		raw, n := protowire.ConsumeBytes(b)
		if n < 0 || p.UnmarshalBinary(raw) != nil {
			return -1
		}
		return n
	}
	return -1
}
