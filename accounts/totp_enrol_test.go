package accounts

import (
	"context"
	"encoding/xml"
	"errors"
	"image"
	"image/color"
	"io"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	qr "github.com/piglig/go-qr"
	"github.com/pquerna/otp"
)

func TestNewTOTPEnrolment(t *testing.T) {
	e, err := NewTOTPEnrolment("gw.example.com", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	key, err := otp.NewKeyFromURL(e.URI)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(e.URI)
	if u.Scheme != "otpauth" || u.Host != "totp" || key.Issuer() != "gw.example.com" || key.AccountName() != "alice@example.com" {
		t.Errorf("URI %s", e.URI)
	}
	if key.Period() != 30 || key.Digits() != otp.DigitsSix || key.Algorithm() != otp.AlgorithmSHA1 {
		t.Errorf("URI %s: not the parameters CheckTOTP checks", e.URI)
	}
	if key.Secret() != e.Secret {
		t.Errorf("secret %q, the URI's %q", e.Secret, key.Secret())
	}
	if s, err := TOTPSecret(e.Secret); err != nil || s != e.Secret {
		t.Errorf("TOTPSecret(%q) = %q, %v: Account.TOTP could not hold it", e.Secret, s, err)
	}
	if len(e.Secret) != 32 { // 20 bytes of base32
		t.Errorf("secret %q is not 160 bits", e.Secret)
	}
	e2, _ := NewTOTPEnrolment("gw.example.com", "alice@example.com")
	if e2.Secret == e.Secret {
		t.Error("two enrolments, one secret")
	}

	// A code computed from the URI's secret, as an app that scanned it
	// would, turns it on once.
	d := New(nil, []byte("key"), &ledger{})
	now := time.Date(2026, 12, 5, 21, 0, 0, 0, time.UTC)
	code, err := TOTPCode(key.Secret(), now)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.ConfirmTOTP(context.Background(), "alice", key.Secret(), code, now.Add(10*time.Second)); err != nil {
		t.Fatalf("ConfirmTOTP: %v", err)
	}
	if err := d.ConfirmTOTP(context.Background(), "alice", key.Secret(), code, now.Add(20*time.Second)); !errors.Is(err, ErrCodeUsed) {
		t.Errorf("the same code again: %v", err)
	}
	// The confirming code cannot pass the sign-in right after it.
	if err := d.CheckTOTP(context.Background(), Account{User: "alice", TOTP: key.Secret()}, code, now.Add(25*time.Second)); !errors.Is(err, ErrCodeUsed) {
		t.Errorf("the confirming code at sign-in: %v", err)
	}
	later, _ := TOTPCode(key.Secret(), now.Add(5*time.Minute))
	if err := d.ConfirmTOTP(context.Background(), "bob", key.Secret(), later, now); !errors.Is(err, ErrWrongCode) {
		t.Errorf("a code of 5 minutes later: %v", err)
	}
	if err := d.ConfirmTOTP(context.Background(), "bob", e2.Secret, code, now); !errors.Is(err, ErrWrongCode) {
		t.Errorf("a code of another secret: %v", err)
	}

	for _, c := range [][2]string{{"", "alice"}, {"gw.example.com", ""}} {
		if _, err := NewTOTPEnrolment(c[0], c[1]); err == nil {
			t.Errorf("NewTOTPEnrolment(%q, %q): no error", c[0], c[1])
		}
	}
}

// TestTOTPEnrolmentQR reads the SVG back: only shapes, no script, link
// or style; its modules are the library's for the URI; and the picture
// it draws decodes to the URI.
func TestTOTPEnrolmentQR(t *testing.T) {
	// A name with characters that need escaping in the URI, and that must
	// not reach the SVG.
	e, err := NewTOTPEnrolment("Gateway <gw>", `o'brien&"co"@example.com`)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	dec := xml.NewDecoder(strings.NewReader(e.QR))
	var side int
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG does not read as XML: %v", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			if cd, ok := tok.(xml.CharData); ok && strings.TrimSpace(string(cd)) != "" {
				t.Errorf("text in the SVG: %q", cd)
			}
			continue
		}
		switch se.Name.Local {
		case "svg", "rect":
		case "path":
			for _, a := range se.Attr {
				if a.Name.Local == "d" {
					paths = append(paths, a.Value)
				}
			}
		default:
			t.Errorf("element <%s> in the SVG", se.Name.Local)
		}
		for _, a := range se.Attr {
			switch {
			case strings.HasPrefix(a.Name.Local, "on"), a.Name.Local == "href", a.Name.Local == "style", strings.Contains(a.Value, "url("):
				t.Errorf("attribute %s=%q in the SVG", a.Name.Local, a.Value)
			case se.Name.Local == "svg" && a.Name.Local == "viewBox":
				f := strings.Fields(a.Value)
				side, _ = strconv.Atoi(f[len(f)-1])
			}
		}
	}
	if len(paths) != 1 {
		t.Fatalf("%d paths", len(paths))
	}

	want, err := qr.EncodeText(e.URI, qr.Medium)
	if err != nil {
		t.Fatal(err)
	}
	n := want.Size()
	if side != n+2*qrQuiet {
		t.Fatalf("viewBox side %d for %d modules and a quiet zone of %d", side, n, qrQuiet)
	}
	// The path's rectangles, module by module.
	got := make([][]bool, side)
	for i := range got {
		got[i] = make([]bool, side)
	}
	rect := regexp.MustCompile(`M(\d+) (\d+)h(\d+)v1h-(\d+)z`)
	if rest := rect.ReplaceAllString(paths[0], ""); rest != "" {
		t.Fatalf("the path has more than rectangles: %q", rest)
	}
	for _, m := range rect.FindAllStringSubmatch(paths[0], -1) {
		x, _ := strconv.Atoi(m[1])
		y, _ := strconv.Atoi(m[2])
		w, _ := strconv.Atoi(m[3])
		if m[3] != m[4] || x+w > side || y >= side {
			t.Fatalf("rectangle %q", m[0])
		}
		for i := x; i < x+w; i++ {
			if got[y][i] {
				t.Fatalf("module %d,%d drawn twice", i, y)
			}
			got[y][i] = true
		}
	}
	for y := range side {
		for x := range side {
			if got[y][x] != want.Module(x-qrQuiet, y-qrQuiet) {
				t.Fatalf("module %d,%d: drawn %v, the library's %v", x-qrQuiet, y-qrQuiet, got[y][x], want.Module(x-qrQuiet, y-qrQuiet))
			}
		}
	}

	// The picture, 4 pixels a module, as a camera would read it.
	img := image.NewGray(image.Rect(0, 0, 4*side, 4*side))
	for py := range 4 * side {
		for px := range 4 * side {
			c := color.Gray{Y: 255}
			if got[py/4][px/4] {
				c = color.Gray{}
			}
			img.SetGray(px, py, c)
		}
	}
	text, err := qr.Decode(img)
	if err != nil {
		t.Fatalf("the drawn QR code does not decode: %v", err)
	}
	if text != e.URI {
		t.Fatalf("the QR code reads %q, not the URI %q", text, e.URI)
	}
	for _, s := range []string{"brien", "Gateway", "<gw>"} {
		if strings.Contains(e.QR, s) {
			t.Errorf("the SVG holds %q", s)
		}
	}
}

// A site's port stays out of the account's name in the app: the label
// is split at its first colon, so the issuer carries none.
func TestTOTPEnrolmentIssuerWithAPort(t *testing.T) {
	for _, site := range []string{"127.0.0.1:37650", "[::1]:8443", "wiki.example.com"} {
		e, err := NewTOTPEnrolment(site, "nora")
		if err != nil {
			t.Fatal(err)
		}
		key, err := otp.NewKeyFromURL(e.URI)
		if err != nil {
			t.Fatal(err)
		}
		if key.AccountName() != "nora" || strings.Contains(key.Issuer(), ":") {
			t.Fatalf("%s: account %q, issuer %q (%s)", site, key.AccountName(), key.Issuer(), e.URI)
		}
	}
}
