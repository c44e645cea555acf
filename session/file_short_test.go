package session

import (
	"math"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// User agents read back exactly from their short form, which is
// shorter for a browser's and absent for what is not plain ASCII or has
// no phrase.
func TestFileAgentShortForm(t *testing.T) {
	for _, ua := range []string{
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
		"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
	} {
		short := shortAgent(ua)
		if short == "" || len(short) > len(ua)/2 {
			t.Fatalf("%q: short form of %d bytes", ua, len(short))
		}
		if back, ok := longAgent(short); !ok || back != ua {
			t.Fatalf("%q came back as %q", ua, back)
		}
	}
	for _, ua := range []string{"", "curl/8.5.0", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Ünïcode", "Mozilla/5.0 (\x80"} {
		if short := shortAgent(ua); short != "" {
			t.Fatalf("%q has a short form %q", ua, short)
		}
	}
	if _, ok := longAgent("a\xffb"); ok {
		t.Fatal("a byte that names no phrase was read")
	}
}

// A record of a browser's sign-in, with the common words, coordinates in
// hundred-thousandths and floats that are not, survives the round trip,
// and takes less room than each field spelled out.
func TestFileCodecShortForms(t *testing.T) {
	r := fileRecord{Session: Session{ID: "0123456789abcdef0123456789abcdef", UserID: "ada@example.com", Name: "Ada",
		UserAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		Device:    "Mac", DeviceType: "desktop", Browser: "Safari", OS: "macOS", AuthMethod: MethodPassword, Kind: "token",
		EndReason: EndExpired, Lat: 52.52, Lon: 13.405, HasCoord: true, CreatedAt: time.UnixMilli(1_780_000_000_000).UTC()}}
	short := encodeRecord(&r)
	sameJSON(t, "the record", r, decodeRecordValue(r.ID, short))
	if len(short) > 90 {
		t.Fatalf("the record takes %d bytes", len(short))
	}
	r.Lat, r.Lon = 1.0/3, -math.Pi*1e6
	sameJSON(t, "the record", r, decodeRecordValue(r.ID, encodeRecord(&r)))
	e := fileEvent{E: Event{Type: EventLogin, At: r.CreatedAt, UserID: r.UserID, Browser: "Safari", OS: "macOS", DeviceName: "Mac"}}
	got, ok := decodeFileEvent(r.UserID, encodeFileEvent(&e, r.UserID))
	if !ok {
		t.Fatal("the event does not decode")
	}
	sameJSON(t, "the event", e, got)
}

// A word of a later version's list reads as no value, not as a record
// that cannot be read.
func TestFileCodecLaterCommonWord(t *testing.T) {
	r := fileRecord{Session: Session{ID: "0123456789abcdef0123456789abcdef", UserID: "ada@example.com"}}
	v := encodeRecord(&r)
	v = protowire.AppendVarint(protowire.AppendTag(v, 13+commonField, protowire.VarintType), 10_000) // the browser
	got := decodeRecordValue(r.ID, v)
	if got == nil || got.Browser != "" || !reflect.DeepEqual(got.UserID, r.UserID) {
		t.Fatalf("read as %+v", got)
	}
}
