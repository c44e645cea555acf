package sessionauth

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/sessionauth/caddy-sessionauth/accounts"
)

// SignIn is the gateway's own sign-in (SPEC 11): OIDC providers and
// local accounts, for apps that have no login of their own.
type SignIn struct {
	// OpenID Connect providers, one button each on the sign-in page.
	OIDC []*OIDCProvider `json:"oidc,omitempty"`
	// Local accounts, with bcrypt or argon2id hashes as `caddy hash-password` prints them.
	Accounts []*Account `json:"accounts,omitempty"`
	// Stored: accounts also live in the session store, created on the
	// admin API and managed by their people (SPEC 15; accounts_stored.go).
	Stored bool `json:"stored,omitempty"`

	// A file of account blocks (the Caddyfile's accounts syntax), read at provision.
	AccountsFile string `json:"accounts_file,omitempty"`
	// SecondFactor is optional (default) or required (SPEC 15): then the
	// account page does not remove an account's last second factor.
	// The Caddyfile line is parsed with stored accounts.
	SecondFactor string `json:"second_factor,omitempty"`
	// Passkeys (WebAuthn) for every account: on when given (SPEC 15).
	Passkeys *PasskeysConfig `json:"passkeys,omitempty"`
}

// secondFactorRequired is SignIn.SecondFactor's "required".
const secondFactorRequired = "required"

// Account is a local user.
type Account struct {
	// The user id, forwarded as X-Auth-User.
	User string `json:"user"`
	// bcrypt or argon2id hash of the password, as `caddy hash-password` prints it.
	Hash  string   `json:"hash"`
	Email string   `json:"email,omitempty"`
	Name  string   `json:"name,omitempty"`
	Roles []string `json:"roles,omitempty"`
	// Base32 TOTP secret; with one, a 6-digit code is asked after the
	// password. {env.*} placeholders are expanded.
	TOTP string `json:"totp,omitempty"`
}

// OIDCProvider is an OpenID Connect provider users may sign in with.
type OIDCProvider struct {
	// Name in the callback path {endpoints}/callback/<name> and in X-Auth-Method oidc:<name>.
	Name string `json:"name"`
	// Issuer URL; discovery at <issuer>/.well-known/openid-configuration.
	Issuer   string `json:"issuer"`
	ClientID string `json:"client_id"`
	// Omitted for a public client (PKCE alone). {env.*} placeholders are expanded.
	ClientSecret string `json:"client_secret,omitempty"`
	// Default: openid email profile.
	Scopes []string `json:"scopes,omitempty"`
	// The button's text; default the name.
	Label string `json:"label,omitempty"`
	// The claim that names the user; default email (then email_verified must be true).
	UserClaim string `json:"user_claim,omitempty"`
	// The claim that lists the user's roles; default groups.
	RolesClaim string `json:"roles_claim,omitempty"`
	// With any allow_*, the user must match one of them.
	AllowUsers   []string `json:"allow_users,omitempty"`
	AllowDomains []string `json:"allow_domains,omitempty"`
	AllowRoles   []string `json:"allow_roles,omitempty"`
	// Refresh at the provider at most this often, on a request; a refusal
	// ends the session. 0 (default) is off.
	Recheck caddy.Duration `json:"recheck,omitempty"`
	// User ids this provider may sign in as although a local account or
	// another provider (from a different claim) has them: the operator
	// says they are the same people. "*" links every id.
	LinkUsers []string `json:"link_users,omitempty"`
	// Forward the access token as X-Auth-Access-Token.
	PassAccessToken bool `json:"pass_access_token,omitempty"`
	// /.auth/logout continues to the provider's end_session_endpoint.
	LogoutAtProvider bool `json:"logout_at_provider,omitempty"`
}

var providerName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// check reports the first impossible setting of the sign-in block.
func (si *SignIn) check() error {
	if len(si.OIDC) == 0 && len(si.Accounts) == 0 && si.AccountsFile == "" && !si.Stored {
		return errors.New("sign_in needs at least one oidc provider or accounts")
	}
	if si.SecondFactor != "" {
		if err := oneOf("second_factor", si.SecondFactor, "optional", secondFactorRequired); err != nil {
			return err
		}
	}
	names := map[string]bool{}
	for _, p := range si.OIDC {
		if !providerName.MatchString(p.Name) {
			return fmt.Errorf("oidc name %q must be lower-case letters, digits, - and _ (at most 32)", p.Name)
		}
		if names[p.Name] {
			return fmt.Errorf("oidc %s given more than once", p.Name)
		}
		names[p.Name] = true
		if err := p.check(); err != nil {
			return fmt.Errorf("oidc %s: %v", p.Name, err)
		}
	}
	seen := map[string]bool{}
	for _, a := range si.Accounts {
		if err := a.check(); err != nil {
			return err
		}
		if seen[a.User] {
			return fmt.Errorf("account %q given more than once", a.User)
		}
		seen[a.User] = true
	}
	return nil
}

func (p *OIDCProvider) check() error {
	switch {
	case p.Issuer == "":
		return errors.New("issuer is required")
	case !strings.HasPrefix(p.Issuer, "https://") && !strings.HasPrefix(p.Issuer, "http://"):
		return fmt.Errorf("issuer %q must be an https:// URL", p.Issuer)
	case p.ClientID == "":
		return errors.New("client_id is required")
	case p.Recheck < 0:
		return errors.New("recheck must not be negative")
	}
	return nil
}

func (a *Account) check() error {
	if err := checkIdentity(a.User, a.Email, a.Name, strings.Join(a.Roles, ",")); err != nil {
		return fmt.Errorf("account %q: %v", a.User, err)
	}
	if err := accounts.CheckHash(a.Hash); err != nil {
		return fmt.Errorf("account %q: %v", a.User, err)
	}
	if a.TOTP != "" && !strings.HasPrefix(a.TOTP, "{env.") {
		if _, err := accounts.TOTPSecret(a.TOTP); err != nil {
			return fmt.Errorf("account %q: totp: %v", a.User, err)
		}
	}
	return nil
}

// provision reads the accounts file and expands secrets: the accounts,
// the file's and the config's, as the accounts directory holds them.
func (si *SignIn) provision() ([]accounts.Account, error) {
	repl := caddy.NewReplacer()
	list := slices.Clone(si.Accounts)
	if si.AccountsFile != "" {
		body, err := os.ReadFile(si.AccountsFile)
		if err != nil {
			return nil, fmt.Errorf("sign_in accounts_file: %v", err)
		}
		tokens, err := caddyfile.Tokenize(body, si.AccountsFile)
		if err != nil {
			return nil, fmt.Errorf("sign_in accounts_file: %v", err)
		}
		fromFile, err := parseAccountBlocks(caddyfile.NewDispenser(tokens), nil)
		if err != nil {
			return nil, fmt.Errorf("sign_in accounts_file: %v", err)
		}
		list = append(list, fromFile...)
	}
	out := make([]accounts.Account, 0, len(list))
	seen := make(map[string]bool, len(list))
	for _, a := range list {
		if err := a.check(); err != nil {
			return nil, err
		}
		a.User = userIDOf(a.User)
		if seen[a.User] {
			return nil, fmt.Errorf("account %q given more than once", a.User)
		}
		seen[a.User] = true
		totp := strings.ToUpper(strings.ReplaceAll(repl.ReplaceAll(a.TOTP, ""), " ", ""))
		if totp != "" {
			if _, err := accounts.TOTPSecret(totp); err != nil {
				return nil, fmt.Errorf("account %q: totp: %v", a.User, err)
			}
		}
		out = append(out, accounts.Account{User: a.User, Hash: a.Hash, Email: a.Email, Name: a.Name, Roles: a.Roles, TOTP: totp})
	}
	for _, p := range si.OIDC {
		p.ClientSecret = repl.ReplaceAll(p.ClientSecret, "")
	}
	return out, nil
}

// parseSignIn reads a sign_in block.
func parseSignIn(d *caddyfile.Dispenser) (*SignIn, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	si := &SignIn{}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "oidc":
			p, err := parseOIDC(d)
			if err != nil {
				return nil, err
			}
			for _, q := range si.OIDC {
				if q.Name == p.Name {
					return nil, d.Errf("sign_in: oidc %s given more than once", p.Name)
				}
			}
			si.OIDC = append(si.OIDC, p)
		case "accounts":
			if seen[opt] {
				return nil, d.Errf("sign_in: accounts given more than once")
			}
			seen[opt] = true
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			list, err := parseAccountBlocks(d, &si.Stored)
			if err != nil {
				return nil, err
			}
			si.Accounts = list
		case "passkeys":
			if seen[opt] {
				return nil, d.Errf("sign_in: passkeys given more than once")
			}
			seen[opt] = true
			pk, err := parsePasskeys(d)
			if err != nil {
				return nil, err
			}
			si.Passkeys = pk
		case "accounts_file":
			if seen[opt] {
				return nil, d.Errf("sign_in: accounts_file given more than once")
			}
			seen[opt] = true
			if err := stringArg(d, &si.AccountsFile); err != nil {
				return nil, err
			}
		case "second_factor":
			if seen[opt] {
				return nil, d.Errf("sign_in: second_factor given more than once")
			}
			seen[opt] = true
			if err := stringArg(d, &si.SecondFactor); err != nil {
				return nil, err
			}
			if err := oneOf("second_factor", si.SecondFactor, "optional", secondFactorRequired); err != nil {
				return nil, d.Errf("sign_in: %v", err)
			}
		default:
			return nil, d.Errf("sign_in: unknown subdirective %q", opt)
		}
	}
	if err := si.check(); err != nil {
		return nil, d.Errf("%v", err)
	}
	return si, nil
}

// parseAccountBlocks reads `<user> <hash> { … }` lines: inside the
// accounts block (stored not nil: there, a `stored` line sets it) or as
// a whole accounts_file.
func parseAccountBlocks(d *caddyfile.Dispenser, stored *bool) ([]*Account, error) {
	nested := stored != nil
	var out []*Account
	next := func() bool { return d.Next() }
	if nested {
		nesting := d.Nesting()
		next = func() bool { return d.NextBlock(nesting) }
	}
	seen := map[string]bool{}
	for next() {
		if nested && d.Val() == "stored" && d.CountRemainingArgs() == 0 {
			if *stored {
				return nil, d.Errf("accounts: stored given more than once")
			}
			*stored = true
			continue
		}
		a := &Account{User: d.Val()}
		if !d.NextArg() {
			return nil, d.Errf("account %q needs a password hash (`caddy hash-password` prints one)", a.User)
		}
		a.Hash = d.Val()
		if err := accounts.CheckHash(a.Hash); err != nil {
			return nil, d.Errf("account %q: %v", a.User, err) // the hash's own line
		}
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		if seen[a.User] {
			return nil, d.Errf("account %q given more than once", a.User)
		}
		seen[a.User] = true
		opts := map[string]bool{}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			opt := d.Val()
			if opts[opt] {
				return nil, d.Errf("account %q: %s given more than once", a.User, opt)
			}
			opts[opt] = true
			var err error
			switch opt {
			case "email":
				err = stringArg(d, &a.Email)
			case "name":
				err = stringArg(d, &a.Name)
			case "roles":
				a.Roles = d.RemainingArgs()
				if len(a.Roles) == 0 {
					return nil, d.ArgErr()
				}
			case "totp":
				err = stringArg(d, &a.TOTP)
			default:
				return nil, d.Errf("account %q: unknown subdirective %q", a.User, opt)
			}
			if err != nil {
				return nil, err
			}
		}
		if err := a.check(); err != nil {
			return nil, d.Errf("%v", err)
		}
		out = append(out, a)
	}
	return out, nil
}

func parseOIDC(d *caddyfile.Dispenser) (*OIDCProvider, error) {
	p := &OIDCProvider{}
	if err := stringArg(d, &p.Name); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("oidc %s: %s given more than once", p.Name, opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "issuer":
			err = stringArg(d, &p.Issuer)
		case "client_id":
			err = stringArg(d, &p.ClientID)
		case "client_secret":
			err = stringArg(d, &p.ClientSecret)
		case "scopes":
			p.Scopes = d.RemainingArgs()
			if len(p.Scopes) == 0 {
				return nil, d.ArgErr()
			}
		case "label":
			err = stringArg(d, &p.Label)
		case "user_claim":
			err = stringArg(d, &p.UserClaim)
		case "roles_claim":
			err = stringArg(d, &p.RolesClaim)
		case "allow_users", "allow_domains", "allow_roles", "link_users":
			vals := d.RemainingArgs()
			if len(vals) == 0 {
				return nil, d.ArgErr()
			}
			switch opt {
			case "link_users":
				p.LinkUsers = vals
			case "allow_users":
				p.AllowUsers = vals
			case "allow_domains":
				p.AllowDomains = vals
			default:
				p.AllowRoles = vals
			}
		case "recheck":
			err = durationArg(d, &p.Recheck)
		case "pass_access_token", "logout_at_provider":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			if opt == "pass_access_token" {
				p.PassAccessToken = true
			} else {
				p.LogoutAtProvider = true
			}
		default:
			return nil, d.Errf("oidc %s: unknown subdirective %q", p.Name, opt)
		}
		if err != nil {
			return nil, err
		}
	}
	if !providerName.MatchString(p.Name) {
		return nil, d.Errf("oidc name %q must be lower-case letters, digits, - and _ (at most 32)", p.Name)
	}
	if err := p.check(); err != nil {
		return nil, d.Errf("oidc %s: %v", p.Name, err)
	}
	return p, nil
}
