package session

import (
	"google.golang.org/protobuf/encoding/protowire"

	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// fillEvery sets every field of the struct v points to (and of the
// structs it embeds) to a value that is not zero, different from field
// to field; it fails the test on a field type it cannot fill, so that a
// field added later is part of the round trip below.
func fillEvery(t *testing.T, v reflect.Value, n *int) {
	t.Helper()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		*n++
		switch f.Kind() {
		case reflect.String:
			f.SetString(fmt.Sprintf("value %d é", *n))
		case reflect.Float64:
			f.SetFloat(float64(*n) + 0.25)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64:
			if f.Type() == reflect.TypeOf(time.Duration(0)) {
				f.SetInt(int64(*n)*int64(time.Hour) + 7) // not whole milliseconds
			} else {
				f.SetInt(int64(*n))
			}
		case reflect.Array:
			for j := 0; j < f.Len(); j++ {
				f.Index(j).SetUint(uint64(*n + j))
			}
		case reflect.Slice: // fileRecord.Hash, which only JSON wrote
		case reflect.Struct:
			if f.Type() == reflect.TypeOf(time.Time{}) {
				f.Set(reflect.ValueOf(time.UnixMilli(1_780_000_000_000 + int64(*n)*1000).UTC()))
			} else {
				fillEvery(t, f, n)
			}
		default:
			t.Fatalf("no test value for field %s (%s)", v.Type().Field(i).Name, f.Kind())
		}
	}
}

func sameJSON(t *testing.T, what string, want, got any) {
	t.Helper()
	a, _ := json.Marshal(want)
	b, _ := json.Marshal(got)
	if string(a) != string(b) {
		t.Fatalf("%s changed in the round trip:\nwant %s\ngot  %s", what, a, b)
	}
}

// Every field of a session record, an event and a history survives the
// binary form, also the ones it writes in a shorter way: ids as hex
// bytes, an email that is the user id, the address and country signed
// in from while the session is still there, times that are not whole
// milliseconds or are outside what nanoseconds since 1970 count.
func TestFileCodecKeepsEveryField(t *testing.T) {
	var r fileRecord
	n := 0
	fillEvery(t, reflect.ValueOf(&r).Elem(), &n)
	r.Hash, r.OthersActive = nil, 0 // not stored (see putRecord)
	variants := map[string]func(r *fileRecord){
		"every field different": func(*fileRecord) {},
		"repeated fields": func(r *fileRecord) {
			r.Email, r.LoginIP, r.LoginCountry = r.UserID, r.IP, r.Country
		},
		"hex ids": func(r *fileRecord) {
			r.ID, r.DeviceID, r.Parent = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210", "00ff00ff00ff00ff"
			r.Name = "0123456789ABCDEF0123" // upper case: kept as it is
		},
		"odd times": func(r *fileRecord) {
			r.CreatedAt = time.Unix(1_780_000_000, 123_456_789).UTC()
			r.CheckedAt = time.Date(1969, 7, 20, 20, 17, 40, 5, time.UTC)
			r.EndedAt = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
			r.Lat, r.Lon, r.TokenLifetime = -33.8688, -151.2093, -time.Second
		},
	}
	for name, change := range variants {
		t.Run(name, func(t *testing.T) {
			want := r
			change(&want)
			got := decodeRecordValue(want.ID, encodeRecord(&want))
			if got == nil {
				t.Fatal("the binary record does not decode")
			}
			sameJSON(t, "the record", want, got)
		})
	}

	var e fileEvent
	n = 0
	fillEvery(t, reflect.ValueOf(&e).Elem(), &n)
	for _, user := range []string{e.E.UserID, "someone else"} {
		got, ok := decodeFileEvent(user, encodeFileEvent(&e, user))
		if !ok {
			t.Fatal("the binary event does not decode")
		}
		sameJSON(t, "the event kept in the trail of "+user, e, got)
	}

	h := fileHistory{
		Devices:   map[string]time.Time{"0123456789abcdef0123456789abcdef": time.UnixMilli(1_780_000_000_000).UTC(), "": time.UnixMilli(1_780_000_001_000).UTC()},
		Countries: map[string]time.Time{"DE": time.UnixMilli(1_780_000_002_000).UTC(), "FR": time.Unix(1_780_000_003, 1).UTC()},
		LastLoc:   &fileLoc{Lat: 52.52, Lon: 13.405, At: time.UnixMilli(1_780_000_004_000).UTC()},
		PurgeAt:   time.UnixMilli(1_780_000_005_000).UTC(),
	}
	got, ok := decodeHistory(encodeHistory(&h))
	if !ok {
		t.Fatal("the binary history does not decode")
	}
	sameJSON(t, "the history", h, got)
	if at, ok := purgeOf(encodeHistory(&h)); !ok || !at.Equal(h.PurgeAt) {
		t.Fatalf("the purge time read alone: %v %v", at, ok)
	}
}

// Values cut short or of the wrong wire type are unreadable, never a
// panic or a record that holds less than was written.
func TestFileCodecRefusesDamagedValues(t *testing.T) {
	var r fileRecord
	n := 0
	fillEvery(t, reflect.ValueOf(&r).Elem(), &n)
	v := encodeRecord(&r)
	for i := 1; i < len(v); i++ {
		if got := decodeRecordValue(r.ID, v[:i]); got != nil && reflect.DeepEqual(got, &r) {
			t.Fatalf("a record cut to %d of %d bytes reads as whole", i, len(v))
		}
	}
	if decodeRecordValue(r.ID, []byte{binaryMarker, byte(protowire.EncodeTag(4, protowire.VarintType)), 1}) != nil { // the hash as a varint
		t.Fatal("a field of the wrong wire type was taken")
	}
}

// A file written before the binary form (every value JSON) keeps
// working: its sessions validate, its events list, its histories count
// for the risk checks, its expired records are swept; a record that
// changes is written anew in binary.
func TestFileReadsRecordsWrittenAsJSON(t *testing.T) {
	ctx := context.Background()
	now := time.UnixMilli(1_780_000_000_000).UTC()
	clock := func() time.Time { return now }
	f, err := OpenFile(filepath.Join(t.TempDir(), "sessions.db"), clock, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := Policy{Lifetime: 24 * time.Hour, IdleTimeout: time.Hour, TouchInterval: 5 * time.Minute, Retention: 48 * time.Hour}

	// Written the way the store wrote before: json.Marshal of each value.
	old := func(id, user string, hash [32]byte, purge time.Time) fileRecord {
		r := fileRecord{Session: Session{ID: id, UserID: user, TokenHash: hash, Email: user, IP: "192.0.2.1", LoginIP: "192.0.2.1",
			DeviceID: "0123456789abcdef0123456789abcdef", Country: "DE", CreatedAt: now, LastActiveAt: now}, PurgeAt: purge}
		r.Hash = r.TokenHash[:]
		return r
	}
	live := old("aaaaaaaaaaaa0000000000000000000a", "alice", [32]byte{1}, now.Add(time.Hour))
	gone := old("bbbbbbbbbbbb0000000000000000000b", "bob", [32]byte{2}, now.Add(time.Minute))
	ev := fileEvent{E: Event{Type: EventLogin, At: now, UserID: "alice", SessionID: live.ID, IP: "192.0.2.1"}, PurgeAt: now.Add(p.Retention)}
	hist := fileHistory{Devices: map[string]time.Time{live.DeviceID: now}, Countries: map[string]time.Time{"DE": now}, PurgeAt: now.Add(p.Retention)}
	err = f.update(func(tx *bolt.Tx) error {
		for _, r := range []fileRecord{live, gone} {
			v, _ := json.Marshal(r)
			if err := tx.Bucket(bSessions).Put([]byte(r.ID), v); err != nil {
				return err
			}
			if err := tx.Bucket(bUsers).Put(joinKey(r.UserID, r.ID), nil); err != nil {
				return err
			}
		}
		v, _ := json.Marshal(ev)
		if err := tx.Bucket(bEvents).Put(append(prefixKey("alice"), u64(1)...), v); err != nil {
			return err
		}
		v, _ = json.Marshal(hist)
		return tx.Bucket(bHistory).Put([]byte("alice"), v)
	})
	if err != nil {
		t.Fatal(err)
	}

	if v, err := f.Validate(ctx, live.ID, live.TokenHash, "192.0.2.1", now, p); err != nil || v.Status != Valid || v.Session.Email != "alice" {
		t.Fatalf("a session written as JSON: %+v %v", v, err)
	}
	if evs, err := f.Events(ctx, "alice", time.Time{}, 0); err != nil || len(evs) != 1 || evs[0].SessionID != live.ID {
		t.Fatalf("an event written as JSON: %+v %v", evs, err)
	}
	// The history written as JSON knows the country and one device: a
	// sign-in from there on another device is new-device only (with no
	// history, it would be the baseline: no flag).
	id, _, hash, _ := NewCredentialTagged("aaaaaaaaaaaa")
	s := &Session{ID: id, UserID: "alice", TokenHash: hash, IP: "192.0.2.1", LoginIP: "192.0.2.1", Country: "DE", LoginCountry: "DE",
		DeviceID: "fedcba9876543210fedcba9876543210", CreatedAt: now, LastActiveAt: now}
	if _, err := f.Create(ctx, s, p, Limit{}); err != nil || s.Risk != FlagNewDevice {
		t.Fatalf("a sign-in from the country of a history written as JSON, on another device: risk %q, %v", s.Risk, err)
	}

	// A change writes the record in binary.
	if _, err := f.End(ctx, live.ID, now, EndLogout, ActorSelf, p); err != nil {
		t.Fatal(err)
	}
	err = f.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bSessions).Get([]byte(live.ID)); !isBinary(v) {
			return fmt.Errorf("the ended session is still JSON: %s", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The sweep drops the JSON record past its purge time.
	now = now.Add(2 * time.Minute)
	if err := f.Sweep(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Get(ctx, gone.ID); err != ErrNotFound {
		t.Fatalf("a JSON record past its purge time, after the sweep: %v", err)
	}
	err = f.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bSessions).Get([]byte(gone.ID)) != nil {
			return fmt.Errorf("the sweep left the JSON record past its purge time")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
