package sessionauth

import "testing"

// Handlers on one store share one dispatcher, and hand it their receivers
// and secrets; the last one to go stops it.
func TestDispatcherSharedPerStoreWithReceiversHandedIn(t *testing.T) {
	a, _ := testHandler(t, func(h *Handler) {
		h.Store = &StoreConfig{Type: "memory"}
		h.Notify = &Notify{URL: "http://a.example/hook", Secret: "secret-a"}
	})
	b, _ := testHandler(t, func(h *Handler) {
		h.Store = &StoreConfig{Type: "memory"}
		h.Notify = &Notify{URL: "http://b.example/hook", Secret: "secret-b"}
	})
	d := a.dispatcher
	if d == nil || b.dispatcher != d {
		t.Fatalf("dispatchers %p and %p for one store", d, b.dispatcher)
	}
	for target, want := range map[string]string{"http://a.example/hook": "secret-a", "http://b.example/hook": "secret-b"} {
		if got, ok := d.secret(target); !ok || got != want {
			t.Errorf("%s: secret %q, %v; want %q", target, got, ok, want)
		}
	}
	if err := b.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.secret("http://b.example/hook"); ok {
		t.Error("a receiver whose config is gone still gets signed notices")
	}
	select {
	case <-d.done:
		t.Fatal("the dispatcher stopped while a handler still uses it")
	default:
	}
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	<-d.done // stopped: a hang here fails the test by its timeout
}

// A reload provisions the new config before the old one lets go: the
// dispatcher carries on, and the new config's secret is the one used.
func TestDispatcherKeepsRunningAcrossAReload(t *testing.T) {
	old, _ := testHandler(t, func(h *Handler) {
		h.Store = &StoreConfig{Type: "memory"}
		h.Notify = &Notify{URL: "http://a.example/hook", Secret: "old"}
	})
	d := old.dispatcher
	next, _ := testHandler(t, func(h *Handler) {
		h.Store = &StoreConfig{Type: "memory"}
		h.Notify = &Notify{URL: "http://a.example/hook", Secret: "new"}
	})
	if next.dispatcher != d {
		t.Fatal("a reload started a second dispatcher")
	}
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.secret("http://a.example/hook"); got != "new" {
		t.Errorf("secret %q after the reload, want the new config's", got)
	}
	select {
	case <-d.done:
		t.Fatal("the reload stopped the dispatcher")
	default:
	}
}
