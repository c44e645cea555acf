package sessionauth

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// discoveryServer serves a discovery document whose issuer is what
// issuerOf makes of the server's own URL.
func discoveryServer(t *testing.T, issuerOf func(self string) string) string {
	t.Helper()
	var self string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": issuerOf(self), "authorization_endpoint": self + "/auth", "token_endpoint": self + "/token",
			"jwks_uri": self + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"},
		})
	}))
	t.Cleanup(srv.Close)
	self = srv.URL
	return self
}

// refusedURL is an http URL on a loopback port that nothing listens on.
func refusedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "http://" + addr
}

// The four ways a provider's discovery goes, as GET /session-auth/check
// and the warning at start say them.
func providersForCheck(t *testing.T) (good, refused, wrongIssuer, missing string) {
	good = discoveryServer(t, func(self string) string { return self })
	refused = refusedURL(t)
	wrongIssuer = discoveryServer(t, func(string) string { return "https://sso.example.com" })
	missing = discoveryServer(t, func(self string) string { return self }) + "/realms/none" // 404
	return
}

func getCheck(t *testing.T) (int, checkReport) {
	t.Helper()
	w := httptest.NewRecorder()
	if err := (adminAPI{}).serve(w, httptest.NewRequest(http.MethodGet, "/session-auth/check", nil)); err != nil {
		t.Fatalf("GET /session-auth/check: %v", err)
	}
	var report checkReport
	if err := json.Unmarshal(w.Body.Bytes(), &report); err != nil {
		t.Fatalf("answer %q: %v", w.Body, err)
	}
	return w.Code, report
}

// GET /session-auth/check tries each part of the running config and
// answers one entry per part, in config order, 503 when one fails:
// the store's round trip and a working provider are ok, each bad
// provider says why, and the webhook is shown without its secret path.
func TestCheckRouteSaysWhatWorksAndWhatFails(t *testing.T) {
	good, refused, wrongIssuer, missing := providersForCheck(t)
	h, _ := testHandler(t, func(h *Handler) {
		h.SignIn = &SignIn{OIDC: []*OIDCProvider{
			{Name: "good", Issuer: good, ClientID: "gw"},
			{Name: "down", Issuer: refused, ClientID: "gw"},
			{Name: "wrong", Issuer: wrongIssuer, ClientID: "gw"},
			{Name: "missing", Issuer: missing, ClientID: "gw"},
		}}
		h.Notify = &Notify{URL: "https://hooks.example.com/services/T0/B0/webhook-secret"}
	})
	status, report := getCheck(t)
	if status != http.StatusServiceUnavailable || report.OK {
		t.Fatalf("with failing parts: HTTP %d, ok %v", status, report.OK)
	}
	var lines []string
	for _, p := range report.Parts {
		lines = append(lines, checkLine(p))
	}
	got := strings.Join(lines, "\n")
	want := []string{
		"store file " + h.Store.Path + ": ok (wrote and read back in ",
		"oidc good " + good + ": ok (discovery answered)",
		"oidc down " + refused + ": FAIL: connection refused",
		`oidc wrong ` + wrongIssuer + `: FAIL: wrong issuer: the discovery document says "https://sso.example.com", the config "` + wrongIssuer + `"`,
		"oidc missing " + missing + ": FAIL: the discovery URL answered HTTP 404 Not Found",
		"webhook https://hooks.example.com/…: ok (configured; not called",
	}
	if len(report.Parts) != len(want) {
		t.Fatalf("%d parts, want %d:\n%s", len(report.Parts), len(want), got)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("part %d:\n got %s\nwant %s…", i, lines[i], w)
		}
	}
	if strings.Contains(got, "webhook-secret") {
		t.Errorf("the webhook's secret path is shown:\n%s", got)
	}
}

// With every part working the answer is 200 and ok; the store's try
// takes away the record it wrote.
func TestCheckRouteAllWorking(t *testing.T) {
	good := discoveryServer(t, func(self string) string { return self })
	h, _ := testHandler(t, func(h *Handler) {
		h.Store = &StoreConfig{Type: "memory"}
		h.SignIn = &SignIn{OIDC: []*OIDCProvider{{Name: "good", Issuer: good, ClientID: "gw"}}}
	})
	spy := &stashSpy{Store: h.store}
	h.store = spy
	status, report := getCheck(t)
	if status != http.StatusOK || !report.OK || len(report.Parts) != 2 {
		t.Fatalf("all working: HTTP %d, %+v", status, report)
	}
	if p := report.Parts[0]; p.Kind != "store" || p.Name != "memory" || !p.OK {
		t.Fatalf("store part: %+v", p)
	}
	if len(spy.stashed) != 1 || !slices.Equal(spy.stashed, spy.taken) {
		t.Fatalf("stashed %v, taken %v", spy.stashed, spy.taken)
	}
}

// A store that refuses the write fails its part, saying so.
func TestCheckRouteStoreFails(t *testing.T) {
	h, _ := testHandler(t, func(h *Handler) { h.Store = &StoreConfig{Type: "memory"} })
	h.store = &stashSpy{Store: h.store, fail: session.ErrStoreFull}
	status, report := getCheck(t)
	if status != http.StatusServiceUnavailable || report.OK || len(report.Parts) != 1 ||
		checkLine(report.Parts[0]) != "store memory: FAIL: writing: session store out of memory" {
		t.Fatalf("HTTP %d, %+v", status, report)
	}
}

// A Redis store that nothing answers fails its part, naming the cause.
func TestCheckRouteRedisDown(t *testing.T) {
	addr := strings.TrimPrefix(refusedURL(t), "http://")
	testHandler(t, func(h *Handler) { h.Store = &StoreConfig{Type: "redis", Addresses: []string{addr}} })
	status, report := getCheck(t)
	if status != http.StatusServiceUnavailable || len(report.Parts) != 1 ||
		checkLine(report.Parts[0]) != "store redis "+addr+": FAIL: writing: connection refused" {
		t.Fatalf("HTTP %d, %+v", status, report)
	}
}

// stashSpy records the keys the check writes and reads, and fails the
// write when told.
type stashSpy struct {
	session.Store
	fail           error
	stashed, taken []string
}

func (s *stashSpy) Stash(ctx context.Context, key string, value []byte, ttl time.Duration, now time.Time) error {
	s.stashed = append(s.stashed, key)
	if s.fail != nil {
		return s.fail
	}
	return s.Store.Stash(ctx, key, value, ttl, now)
}

func (s *stashSpy) Take(ctx context.Context, key string, now time.Time) ([]byte, error) {
	s.taken = append(s.taken, key)
	return s.Store.Take(ctx, key, now)
}

// At start each provider's discovery is tried once: a warning names each
// provider that failed and why; one that answered gets an info line.
func TestCheckProvidersWarnsNamingProviderAndReason(t *testing.T) {
	good, refused, wrongIssuer, _ := providersForCheck(t)
	core, logs := observer.New(zap.InfoLevel)
	logger := zap.New(core)
	checkProviders(context.Background(), []providerCheck{
		{name: "good", issuer: good, client: http.DefaultClient, logger: logger},
		{name: "down", issuer: refused, client: http.DefaultClient, logger: logger},
		{name: "wrong", issuer: wrongIssuer, client: http.DefaultClient, logger: logger},
	})
	reasons := map[string]string{}
	for _, e := range logs.FilterLevelExact(zap.WarnLevel).All() {
		f := e.ContextMap()
		reasons[f["provider"].(string)] = f["reason"].(string)
	}
	if len(reasons) != 2 || reasons["down"] != "connection refused" || !strings.HasPrefix(reasons["wrong"], "wrong issuer: the discovery document says \"https://sso.example.com\"") {
		t.Fatalf("warnings: %v", reasons)
	}
	if n := logs.FilterMessage("OIDC provider's discovery answered").FilterField(zap.String("provider", "good")).Len(); n != 1 {
		t.Fatalf("info lines for the working provider: %d", n)
	}
}

// A config that ends while its providers are tried logs nothing about
// them: the check no longer concerns anyone.
func TestCheckProvidersQuietAfterTheConfigEnds(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	checkProviders(ctx, []providerCheck{{name: "down", issuer: refusedURL(t), client: http.DefaultClient, logger: zap.New(core)}})
	if logs.Len() != 0 {
		t.Fatalf("logged after the config ended: %v", logs.All())
	}
}
