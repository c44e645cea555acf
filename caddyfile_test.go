package sessionauth

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
)

var update = flag.Bool("update", false, "rewrite the golden adapt files")

func TestCaddyfileErrors(t *testing.T) {
	cases := []struct {
		name, input, want string
	}{
		{"unknown", "session_auth {\n  colour blue\n}", `unknown subdirective "colour"`},
		{"repeated", "session_auth {\n  lifetime 1h\n  lifetime 2h\n}", "lifetime given more than once"},
		{"inline arg", "session_auth foo", "Testfile:1"},
		{"bad duration", "session_auth {\n  lifetime forever\n}", `lifetime: bad duration "forever"`},
		{"negative", "session_auth {\n  idle_timeout -1h\n}", "idle_timeout: must not be negative"},
		{"missing arg", "session_auth {\n  lifetime\n}", "wrong argument count"},
		{"extra arg", "session_auth {\n  lifetime 1h 2h\n}", "wrong argument count"},
		{"touch >= idle", "session_auth {\n  idle_timeout 5m\n  touch_interval 5m\n}", "touch_interval (5m0s) must be shorter than idle_timeout (5m0s)"},
		{"idle > lifetime", "session_auth {\n  lifetime 1h\n  idle_timeout 2h\n}", "idle_timeout (2h0m0s) must not exceed lifetime (1h0m0s)"},
		{"host cookie domain", "session_auth {\n  cookie __Host-sid {\n    domain example.com\n  }\n}", "a __Host- cookie takes no domain and path / only"},
		{"host cookie path", "session_auth {\n  cookie __Host-sid {\n    path /app\n  }\n}", "a __Host- cookie takes no domain and path / only"},
		{"secure cookie never", "session_auth {\n  cookie __Secure-sid {\n    secure never\n  }\n}", "needs Secure"},
		{"samesite none never", "session_auth {\n  cookie {\n    same_site none\n    secure never\n  }\n}", "same_site none needs a Secure cookie"},
		{"bad samesite", "session_auth {\n  cookie {\n    same_site sometimes\n  }\n}", "same_site: must be one of lax, strict, none"},
		{"cookie unknown", "session_auth {\n  cookie {\n    expires 1h\n  }\n}", `cookie: unknown subdirective "expires"`},
		{"bad cookie name", "session_auth {\n  cookie se;ssion\n}", "is not a valid cookie name"},
		{"base_url not absolute", "session_auth {\n  base_url app.example.com\n}", "base_url \"app.example.com\" must be an http:// or https:// URL"},
		{"password_url script", "session_auth {\n  password_url javascript:alert(1)\n}", "password_url \"javascript:alert(1)\" must be a path on the site"},
		{"password_url another host by //", "session_auth {\n  password_url //evil.example/x\n}", "password_url \"//evil.example/x\" must be a path on the site"},
		{"base_url with query", "session_auth {\n  base_url https://app.example.com/?x=1\n}", "with a host and no query"},
		{"store kind", "session_auth {\n  store postgres\n}", `store: "postgres" must be file, memory or redis`},
		{"file two paths", "session_auth {\n  store file a.db b.db\n}", "wrong argument count"},
		{"file block", "session_auth {\n  store file a.db {\n    x y\n  }\n}", `store file: unknown or repeated subdirective "x"`},
		{"file read_timeout twice", "session_auth {\n  store file a.db {\n    read_timeout 1s\n    read_timeout 2s\n  }\n}", `repeated subdirective "read_timeout"`},
		{"file read_timeout negative", "session_auth {\n  store file {\n    read_timeout -1s\n  }\n}", "must not be negative"},
		{"redis nothing", "session_auth {\n  store redis\n}", "store redis needs a URL or addresses"},
		{"redis scheme", "session_auth {\n  store redis http://x\n}", `scheme "http" must be redis, rediss or unix`},
		{"redis unknown", "session_auth {\n  store redis redis://x {\n    sentinel y\n  }\n}", `store redis: unknown subdirective "sentinel"`},
		{"redis repeated", "session_auth {\n  store redis {\n    db 1\n    db 2\n  }\n}", "store redis: db given more than once"},
		{"redis db", "session_auth {\n  store redis redis://x {\n    db -1\n  }\n}", "Testfile:3"},
		{"redis master alone", "session_auth {\n  store redis redis://x {\n    master mymaster\n  }\n}", "master needs the sentinel addresses"},
		{"cluster db", "session_auth {\n  store redis {\n    addresses a:1 b:2\n    db 3\n  }\n}", "has only db 0"},
		{"tls cert alone", "session_auth {\n  store redis rediss://x {\n    tls_cert c.pem\n  }\n}", "tls_cert and tls_key go together"},
		{"tls on redis://", "session_auth {\n  store redis redis://x {\n    tls_ca ca.pem\n  }\n}", "need a rediss:// URL"},
		{"memory block", "session_auth {\n  store memory {\n    x y\n  }\n}", "store memory takes no block"},
		{"max sessions", "session_auth {\n  max_sessions -1\n}", "Testfile:2"},
		{"max mode", "session_auth {\n  max_sessions 3 newest\n}", `max_sessions mode "newest"`},
		{"login relative", "session_auth {\n  login login\n}", `login path "login" must be a clean absolute path`},
		{"login dots", "session_auth {\n  login /a/../login\n}", "must be a clean absolute path"},
		{"login under endpoints", "session_auth {\n  login /.auth/login\n}", "is under endpoints"},
		{"endpoints", "session_auth {\n  endpoints auth\n}", "must be a clean path"},
		{"unauth", "session_auth {\n  unauthenticated maybe\n}", `unauthenticated: "maybe" must be redirect or status`},
		{"unauth code", "session_auth {\n  unauthenticated status 200\n}", "must be a 4xx or 5xx code"},
		{"header prefix", "session_auth {\n  header_prefix X_Auth\n}", "must be letters, digits and dashes"},
		{"ip_change", "session_auth {\n  ip_change block\n}", "ip_change: must be one of allow, flag, deny"},
		{"country_change", "session_auth {\n  country_change sometimes\n}", "country_change: must be one of"},
		{"rate", "session_auth {\n  login_rate 10\n}", "wrong argument count"},
		{"rate count", "session_auth {\n  guess_rate 0 1m\n}", "count \"0\" must be a positive whole number"},
		{"rate window", "session_auth {\n  guess_rate 5 soon\n}", "window \"soon\" must be a positive duration"},
		{"grace", "session_auth {\n  store_unavailable grace\n}", "store_unavailable grace needs a duration"},
		{"two email blocks", "session_auth {\n  notify email {\n    smtp m:25\n    from a@b.c\n  }\n  notify email {\n    smtp n:25\n    from a@b.c\n  }\n}", "notify email given more than once, at Testfile:6"},
		{"same webhook twice", "session_auth {\n  notify https://x/h\n  notify https://x/h\n}", "notify https://x/h given more than once"},
		{"email no smtp", "session_auth {\n  notify email {\n    from a@b.c\n  }\n}", "notify email needs smtp <host:port>"},
		{"email no port", "session_auth {\n  notify email {\n    smtp mail.example.com\n    from a@b.c\n  }\n}", `smtp "mail.example.com" must be host:port`},
		{"email no from", "session_auth {\n  notify email {\n    smtp m:25\n  }\n}", "from is required"},
		{"email bad from", "session_auth {\n  notify email {\n    smtp m:25\n    from nobody\n  }\n}", `from "nobody" is not a mail address`},
		{"email tls", "session_auth {\n  notify email {\n    smtp m:25\n    tls maybe\n  }\n}", "tls: must be one of starttls, implicit, none"},
		{"email event", "session_auth {\n  notify email {\n    smtp m:25\n    from a@b.c\n    events new_login ip_change\n  }\n}", `notify email event "ip_change" must be one of impossible_travel, new_country, new_device, new_login`},
		{"email unknown", "session_auth {\n  notify email {\n    smtp m:25\n    to x@y.z\n  }\n}", `notify email: unknown subdirective "to"`},
		{"email repeated", "session_auth {\n  notify email {\n    smtp m:25\n    smtp n:25\n  }\n}", "notify email: smtp given more than once"},
		{"email user alone", "session_auth {\n  notify email {\n    smtp m:25\n    from a@b.c\n    username u\n  }\n}", "username and password go together"},
		{"email arg", "session_auth {\n  notify email now {\n    smtp m:25\n  }\n}", "wrong argument count"},
		{"unavailable", "session_auth {\n  store_unavailable allow\n}", "must be deny or grace"},
		{"notify url", "session_auth {\n  notify ftp://x\n}", "must be an http:// or https:// URL"},
		{"notify event", "session_auth {\n  notify https://x {\n    events new_login logout\n  }\n}", `notify event "logout"`},
		{"notify unknown", "session_auth {\n  notify https://x {\n    retries 3\n  }\n}", `notify: unknown subdirective "retries"`},
		{"optional arg", "session_auth {\n  optional yes\n}", "wrong argument count"},
		{"api_tokens option", "session_auth {\n  api_tokens lifetime 1h\n}", `api_tokens: unknown option "lifetime"`},
		{"api_tokens zero", "session_auth {\n  api_tokens max_lifetime 0s\n}", "max_lifetime must be positive"},
		{"api_tokens bad", "session_auth {\n  api_tokens max_lifetime soon\n}", `max_lifetime: bad duration "soon"`},
		{"api_tokens fresh zero", "session_auth {\n  api_tokens {\n    fresh 0s\n  }\n}", "api_tokens: fresh must be positive, at Testfile:3"},
		{"api_tokens fresh bad", "session_auth {\n  api_tokens {\n    fresh soon\n  }\n}", `fresh: bad duration "soon"`},
		{"api_tokens max_per_user zero", "session_auth {\n  api_tokens {\n    max_per_user 0\n  }\n}", `api_tokens: max_per_user must be a whole number of 1 or more, got "0", at Testfile:3`},
		{"api_tokens max_per_user word", "session_auth {\n  api_tokens {\n    max_per_user many\n  }\n}", `max_per_user must be a whole number of 1 or more, got "many"`},
		{"api_tokens max_per_user twice", "session_auth {\n  api_tokens {\n    max_per_user 3\n    max_per_user 4\n  }\n}", "api_tokens: max_per_user given more than once, at Testfile:4"},
		{"api_tokens unknown", "session_auth {\n  api_tokens {\n    per_user 3\n  }\n}", `api_tokens: unknown subdirective "per_user" (fresh, max_per_user), at Testfile:3`},
		{"recheck negative", "session_auth {\n  sign_in {\n    oidc corp {\n      issuer https://id.example.com\n      client_id gw\n      recheck -1m\n    }\n  }\n}", "recheck"},
		{"recheck no duration", "session_auth {\n  sign_in {\n    oidc corp {\n      issuer https://id.example.com\n      client_id gw\n      recheck\n    }\n  }\n}", "wrong argument count"},
		{"pass_access_token arg", "session_auth {\n  sign_in {\n    oidc corp {\n      issuer https://id.example.com\n      client_id gw\n      pass_access_token yes\n    }\n  }\n}", "wrong argument count"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if err == nil {
				t.Fatalf("no error for:\n%s", tc.input)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Fatalf("error %q has no file:line", err)
			}
		})
	}
}

// The file store's write deadline: read_timeout in its block, 2s when
// not given.
func TestFileStoreReadTimeout(t *testing.T) {
	for input, want := range map[string]time.Duration{
		"session_auth {\n  store file a.db {\n    read_timeout 3s\n  }\n}": 3 * time.Second,
		"session_auth {\n  store file a.db\n}":                             2 * time.Second,
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
			t.Fatal(err)
		}
		h.Store.applyDefaults()
		if got := time.Duration(h.Store.ReadTimeout); got != want {
			t.Fatalf("%q: read_timeout %v, want %v", input, got, want)
		}
	}
}

// A whole Caddyfile: the adapter reports the file and line of the mistake.
func TestAdaptErrorNamesFileAndLine(t *testing.T) {
	input := "localhost {\n\tsession_auth {\n\t\ttouch_interval 2h\n\t\tidle_timeout 1h\n\t}\n\trespond ok\n}\n"
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
	if err == nil || !strings.Contains(err.Error(), "Caddyfile:3") || !strings.Contains(err.Error(), "touch_interval") {
		t.Fatalf("adapt error: %v", err)
	}
}

// Golden adapt tests: testdata/caddyfile_adapt/*.caddyfiletest hold a
// Caddyfile, a line of dashes and the JSON it must adapt to. Run with
// -update to rewrite them after a deliberate change.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, expected, _ := strings.Cut(string(data), "----------")
			input = strings.TrimSpace(input) + "\n"
			if *update {
				out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
				if err != nil {
					t.Fatal(err)
				}
				var indented bytes.Buffer
				if err := json.Indent(&indented, out, "", "\t"); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(input+"----------\n"+indented.String()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !caddytest.CompareAdapt(t, file, input, "caddyfile", strings.TrimSpace(expected)) {
				t.Fatal("adapted JSON differs")
			}
		})
	}
}

// Caddyfile.example is the demo's config: it must adapt, with the file
// store by default and Redis when SESSION_STORE says so.
func TestCaddyfileExampleAdapts(t *testing.T) {
	data, err := os.ReadFile("Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, store := range []string{"", "redis redis://127.0.0.1:6390/2"} {
		t.Setenv("SESSION_STORE", store)
		if store == "" {
			os.Unsetenv("SESSION_STORE") // restored by t.Setenv's cleanup
		}
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(data, map[string]any{"filename": "Caddyfile.example"})
		if err != nil {
			t.Fatalf("SESSION_STORE=%q: %v", store, err)
		}
		want := `"store":{"type":"file"}`
		if store != "" {
			want = `"type":"redis","url":"redis://127.0.0.1:6390/2"`
		}
		if n := strings.Count(string(out), want); n != 2 {
			t.Fatalf("SESSION_STORE=%q: %s has %s %d times, not once per site", store, out, want, n)
		}
		// The demo says it listens on this machine only: every site does.
		if n := strings.Count(string(out), `"listen":["127.0.0.1:`); n != 2 {
			t.Fatalf("SESSION_STORE=%q: %d sites bound to loopback, not 2: %s", store, n, out)
		}
	}
}

// The messages a Caddyfile author reads, whole, as `caddy adapt` prints
// them: testdata/config_messages.golden holds each case's Caddyfile and
// error. Run with -update to rewrite it after a deliberate change.
func TestConfigMessagesGolden(t *testing.T) {
	cases := []struct{ name, body string }{
		{"unknown unit keeps the text as written", "session_auth {\n\t\tlifetime 30days\n\t}"},
		{"missing unit", "session_auth {\n\t\tidle_timeout 30\n\t}"},
		{"not a number", "session_auth {\n\t\tretention forever\n\t}"},
		{"rate window unit", "session_auth {\n\t\tlogin_rate 10 1minute\n\t}"},
		{"options on one line", "session_auth lifetime 24h"},
		{"touch_interval blamed on its line", "session_auth {\n\t\tidle_timeout 1h\n\t\tlifetime 24h\n\t\ttouch_interval 2h\n\t}"},
		{"idle_timeout blamed on its line", "session_auth {\n\t\tidle_timeout 48h\n\t\tlifetime 24h\n\t}"},
		{"a short lifetime alone: idle_timeout follows it", "session_auth {\n\t\tmax_sessions 3\n\t\tlifetime 1h\n\t}"},
		{"lifetime blamed when the idle_timeout it gives is under touch_interval", "session_auth {\n\t\tmax_sessions 3\n\t\tlifetime 3m\n\t}"},
		{"cookie blamed on its line", "session_auth {\n\t\tretention 48h\n\t\tcookie __Host-sid {\n\t\t\tdomain example.com\n\t\t}\n\t}"},
		{"login under endpoints", "session_auth {\n\t\tlogin /.auth/in\n\t\tretention 24h\n\t}"},
	}
	var got strings.Builder
	for _, tc := range cases {
		input := "localhost {\n\t" + tc.body + "\n\trespond ok\n}\n"
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
		msg := "(no error)"
		if err != nil {
			msg = err.Error()
		}
		fmt.Fprintf(&got, "== %s\n%s-- error\n%s\n\n", tc.name, input, msg)
	}
	matchGolden(t, "testdata/config_messages.golden", got.String())
}

// SPEC 2: idle_timeout defaults to the lifetime, at most 720h, so a
// lifetime alone is a whole config; a given idle_timeout is kept.
func TestIdleTimeoutDefaultsToLifetime(t *testing.T) {
	cases := []struct {
		options string
		want    time.Duration
	}{
		{"lifetime 1h", time.Hour},
		{"lifetime 2000h", 720 * time.Hour},
		{"", 720 * time.Hour},
		{"lifetime 1h\n\tidle_timeout 10m", 10 * time.Minute},
		{"lifetime 1h\n\tidle_timeout 0", 0},
	}
	for _, tc := range cases {
		d := caddyfile.NewTestDispenser("session_auth {\n\t" + tc.options + "\n}")
		var h Handler
		if err := h.UnmarshalCaddyfile(d); err != nil {
			t.Errorf("%q: %v", tc.options, err)
			continue
		}
		h.applyDefaults()
		if err := h.check(); err != nil || time.Duration(*h.IdleTimeout) != tc.want {
			t.Errorf("%q: idle_timeout %v (%v), want %v", tc.options, time.Duration(*h.IdleTimeout), err, tc.want)
		}
	}
}
