package sessionauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// A copy of the store holds everything a session record has (its token
// hash among it) but not the link key: a "Not you?" link made from the
// record alone, as links were keyed before, is not valid; the gateway's
// own link is. Two gateways with the same link_secret accept each
// other's links, a gateway with another does not; without link_secret
// the key is made once in Caddy's data directory (0600) and read again
// by the next start, so links outlive a restart.
func TestRevokeLinkNotForgeableFromTheStore(t *testing.T) {
	const shared = "a shared secret of the gateways"
	h, _ := testHandler(t, func(h *Handler) { h.LinkSecret = shared })
	c := signIn(t, h, "alice")
	id, _, _ := strings.Cut(c.Value, ".")
	s, err := h.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	fromStore := hmac.New(sha256.New, s.TokenHash[:])
	fromStore.Write([]byte("revoke:" + id))
	forged := id + "." + hex.EncodeToString(fromStore.Sum(nil))[:32]
	if w := serve(t, h, get("/.auth/revoke?token="+forged, nil), &upstream{}); w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "This link is not valid") {
		t.Fatalf("a link made from the store's record: %d %s", w.Code, w.Body)
	}
	own := h.linkToken(s)
	if w := serve(t, h, get("/.auth/revoke?token="+own, nil), &upstream{}); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Sign out this session?") {
		t.Fatalf("the gateway's own link: %d %s", w.Code, w.Body)
	}

	sibling, _ := testHandler(t, func(h *Handler) { h.LinkSecret = shared })
	stranger, _ := testHandler(t, func(h *Handler) { h.LinkSecret = "another gateway's secret" })
	if sibling.linkToken(s) != own || stranger.linkToken(s) == own {
		t.Fatal("link_secret does not decide the link")
	}

	var parsed Handler
	if err := parsed.UnmarshalCaddyfile(caddyfile.NewTestDispenser("session_auth {\n  link_secret {env.LINK_SECRET}\n}")); err != nil || parsed.LinkSecret != "{env.LINK_SECRET}" {
		t.Fatalf("link_secret in the Caddyfile: %q %v", parsed.LinkSecret, err)
	}
	if err := (&Handler{}).UnmarshalCaddyfile(caddyfile.NewTestDispenser("session_auth {\n  link_secret a\n  link_secret b\n}")); err == nil || !strings.Contains(err.Error(), "Testfile:3") {
		t.Fatalf("link_secret twice: %v", err)
	}
	short := &Handler{LinkSecret: "{env.SA_LINK_SECRET_UNSET}"}
	if err := short.provisionSecret(); err == nil || !strings.Contains(err.Error(), "link_secret must be at least 16 characters") {
		t.Fatalf("an empty link_secret: %v", err)
	}

	t.Setenv("XDG_DATA_HOME", t.TempDir())
	first, _ := testHandler(t, nil)
	again, _ := testHandler(t, nil)
	if first.linkToken(s) != again.linkToken(s) || first.linkToken(s) == own {
		t.Fatal("the default key is not kept across starts")
	}
	info, err := os.Stat(filepath.Join(os.Getenv("XDG_DATA_HOME"), "caddy", "session_auth", linkKeyFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the key file: %v %v", info, err)
	}
}

// Gateways sharing a Redis store verify each other's links only with one
// link_secret: without it, a config with Redis and notifications is
// warned at start; with it, or on a single-instance store, nothing is said.
func TestRedisWithoutLinkSecretIsWarned(t *testing.T) {
	for _, tc := range []struct {
		h    Handler
		warn bool
	}{
		{Handler{Store: &StoreConfig{Type: "redis"}, Notify: &Notify{URL: "https://hooks.example/x"}}, true},
		{Handler{Store: &StoreConfig{Type: "redis"}, NotifyEmail: &NotifyEmail{SMTP: "m:25"}}, true},
		{Handler{Store: &StoreConfig{Type: "redis"}, Notify: &Notify{URL: "https://hooks.example/x"}, LinkSecret: "shared by every gateway"}, false},
		{Handler{Store: &StoreConfig{Type: "file"}, Notify: &Notify{URL: "https://hooks.example/x"}}, false},
	} {
		core, logs := observer.New(zap.WarnLevel)
		h := tc.h
		h.logger = zap.New(core)
		if err := h.provisionSecret(); err != nil {
			t.Fatal(err)
		}
		if got := logs.FilterMessageSnippet("give every gateway the same link_secret").Len() == 1; got != tc.warn {
			t.Errorf("%s store, link_secret %q: warned %v", h.Store.Type, h.LinkSecret, got)
		}
	}
}
