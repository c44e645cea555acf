package accounts

import (
	"context"
	"net"
	"strconv"
	"strings"
	"time"

	qr "github.com/piglig/go-qr"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTPEnrolment is an authenticator app being added (SPEC 15): what the
// page shows, and the secret it keeps until a code confirms it.
type TOTPEnrolment struct {
	// The base32 secret as Account.TOTP holds it, also shown for typing.
	Secret string
	// The otpauth://totp/… URI the QR code holds.
	URI string
	// The QR code of URI as an inline <svg> element: rectangles only, no
	// script, no text, no external fetch, so it shows under a CSP that
	// allows no data: images. Safe to put in a page as it is (no part of
	// it comes from the account's name).
	QR string
}

// NewTOTPEnrolment makes a new secret (160 bits, RFC 4226's size) for
// account at issuer (the site), with the parameters CheckTOTP checks:
// 6 digits, SHA-1, 30 s.
func NewTOTPEnrolment(issuer, account string) (TOTPEnrolment, error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuerLabel(issuer),
		AccountName: account,
		Period:      uint(CodeStep / time.Second),
		SecretSize:  20,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return TOTPEnrolment{}, err
	}
	svg, err := qrSVG(key.URL())
	if err != nil {
		return TOTPEnrolment{}, err
	}
	return TOTPEnrolment{Secret: key.Secret(), URI: key.URL(), QR: svg}, nil
}

// issuerLabel keeps a colon out of the issuer: the URI's label is
// "issuer:account", and apps split it at the first colon, so a site's
// "host:port" would show the port as part of the account's name. The
// port is kept in words, as two sites may differ only in it.
func issuerLabel(issuer string) string {
	if host, port, err := net.SplitHostPort(issuer); err == nil {
		issuer = host + " (port " + port + ")"
	}
	return strings.ReplaceAll(issuer, ":", " ")
}

// ConfirmTOTP checks the first code of an authenticator app being added
// for user, as CheckTOTP checks a sign-in's: the same window, and the
// code's step is used once, so the code that turned TOTP on cannot also
// pass the next sign-in.
func (d *Directory) ConfirmTOTP(ctx context.Context, user, secret, code string, now time.Time) error {
	return d.CheckTOTP(ctx, Account{User: user, TOTP: secret}, code, now)
}

// qrQuiet is the light border around the code, in modules: the 4 the
// QR standard asks for, without which some phone cameras do not find it.
const qrQuiet = 4

// qrSVG draws text's QR code (error correction M) as SVG: one path of
// dark rectangles, a row's neighbouring dark modules joined in one, on a
// light square, scaled by the page's CSS (viewBox in modules).
func qrSVG(text string) (string, error) {
	code, err := qr.EncodeText(text, qr.Medium)
	if err != nil {
		return "", err
	}
	n := code.Size()
	side := strconv.Itoa(n + 2*qrQuiet)
	var b strings.Builder
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ` + side + " " + side +
		`" width="` + strconv.Itoa(4*(n+2*qrQuiet)) + `" shape-rendering="crispEdges" role="img" aria-label="QR code">` +
		`<rect width="` + side + `" height="` + side + `" fill="#fff"/><path fill="#000" d="`)
	for y := range n {
		for x := 0; x < n; {
			if !code.Module(x, y) {
				x++
				continue
			}
			run := 1
			for code.Module(x+run, y) {
				run++
			}
			b.WriteString("M" + strconv.Itoa(x+qrQuiet) + " " + strconv.Itoa(y+qrQuiet) + "h" + strconv.Itoa(run) + "v1h-" + strconv.Itoa(run) + "z")
			x += run
		}
	}
	b.WriteString(`"/></svg>`)
	return b.String(), nil
}
