package sessionauth

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessionauth/caddy-sessionauth/email"
	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// outboxStores runs fn on each store's outbox, all on clock.
func outboxStores(t *testing.T, fn func(t *testing.T, st session.Store, clock *storetest.Clock)) {
	t.Run("memory", func(t *testing.T) {
		clock := storetest.NewClock()
		st, err := session.NewMemory(clock.Now, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, st, clock)
	})
	t.Run("file", func(t *testing.T) {
		clock := storetest.NewClock()
		st, err := session.OpenFile(filepath.Join(t.TempDir(), "sessions.db"), clock.Now, session.FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, st, clock)
	})
	t.Run("redis", func(t *testing.T) {
		srv := redisserver.Start(t)
		client := redis.NewClient(&redis.Options{Addr: srv.Addr})
		t.Cleanup(func() { client.Close() })
		clock := storetest.NewClock()
		var b [4]byte
		_, _ = rand.Read(b[:])
		fn(t, session.NewRedis(client, hex.EncodeToString(b[:])+":", clock.Now), clock)
	})
}

// testDispatcher delivers st's outbox to hook and mail on clock, reading
// it often enough for a test that moves the clock in steps.
func testDispatcher(t *testing.T, st session.Outbox, clock *storetest.Clock, hook *Notify, mail *email.Server) (*dispatcher, func(result string) float64, *observer.ObservedLogs) {
	core, logs := observer.New(zap.InfoLevel)
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, zap.NewNop())
	d := newDispatcher(st, zap.New(core), clock.Now)
	d.block, d.tick = 20*time.Millisecond, 5*time.Millisecond
	d.serve(hook, mail, m)
	d.start()
	t.Cleanup(func() { _ = d.Destruct() })
	// results reads caddy_session_auth_notifications_total{result}.
	results := func(result string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if !strings.HasSuffix(mf.GetName(), "notifications_total") {
				continue
			}
			for _, s := range mf.GetMetric() {
				for _, l := range s.GetLabel() {
					if l.GetName() == "result" && l.GetValue() == result {
						return s.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}
	return d, results, logs
}

// hookSink is a healthy webhook receiver: the sessions of the notices it got.
type hookSink struct {
	url  string
	mu   sync.Mutex
	seen map[string]int
}

func newHookSink(t *testing.T) *hookSink {
	hs := &hookSink{seen: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n session.Notice
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &n)
		hs.mu.Lock()
		hs.seen[n.SessionID]++
		hs.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	hs.url = srv.URL + "/hook"
	return hs
}

func (hs *hookSink) count() int {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return len(hs.seen)
}

// deadPort is an address nobody listens on (a mail server that is down).
func deadPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func mailServerAt(addr string) *email.Server {
	return &email.Server{Addr: addr, From: "no-reply@example.com", TLS: email.TLSNone, Timeout: time.Minute}
}

func notice(clock *storetest.Clock, i int) session.Notice {
	return session.Notice{Event: noticeNewLogin, Events: []string{noticeNewLogin}, At: clock.Now().UTC(), UserID: "ada",
		SessionID: fmt.Sprint("s", i), Email: "ada@example.com"}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("never: %s", what)
		}
	}
}

// A dead mail server beside a healthy webhook receiver: the mails fill
// their own channel, and every webhook notice is queued and delivered.
func TestDeadMailServerLosesNoWebhook(t *testing.T) {
	outboxStores(t, func(t *testing.T, st session.Store, clock *storetest.Clock) {
		prev := session.OutboxCap
		session.OutboxCap = 20
		t.Cleanup(func() { session.OutboxCap = prev })
		hs := newHookSink(t)
		ctx := context.Background()
		testDispatcher(t, st, clock, &Notify{URL: hs.url}, mailServerAt(deadPort(t)))
		refused := 0
		for i := 0; i < 30; i++ {
			if err := st.Enqueue(ctx, mailTarget, notice(clock, i)); err != nil {
				refused++
			}
		}
		if refused != 10 {
			t.Fatalf("%d of 30 mails refused by a channel of 20", refused)
		}
		for i := 0; i < 20; i++ {
			if err := st.Enqueue(ctx, hs.url, notice(clock, i)); err != nil {
				t.Fatalf("webhook notice %d beside a full mail channel: %v", i, err)
			}
		}
		eventually(t, "all 20 webhook notices delivered", func() bool { return hs.count() == 20 })
	})
}

// hangingSMTP accepts connections and never says a word; it counts the
// connections open at once and those the gateway gave up.
type hangingSMTP struct {
	addr               string
	mu                 sync.Mutex
	open, most, closed int
}

func newHangingSMTP(t *testing.T) *hangingSMTP {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &hangingSMTP{addr: l.Addr().String()}
	var conns sync.WaitGroup
	t.Cleanup(func() { l.Close(); conns.Wait() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			hs.mu.Lock()
			hs.open++
			hs.most = max(hs.most, hs.open)
			hs.mu.Unlock()
			conns.Add(1)
			go func() {
				defer conns.Done()
				_, _ = io.Copy(io.Discard, c) // until the gateway hangs up
				c.Close()
				hs.mu.Lock()
				hs.open--
				hs.closed++
				hs.mu.Unlock()
			}()
		}
	}()
	return hs
}

func (hs *hangingSMTP) state() (open, most, closed int) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.open, hs.most, hs.closed
}

// A mail server that accepts and never answers, beside a healthy webhook:
// the webhook notices queued behind the mails are all delivered while
// the mail channel waits, on one connection, which its deadline ends.
func TestHangingMailServerHoldsOnlyItsChannel(t *testing.T) {
	prev := deliveryTimeout
	deliveryTimeout = 3 * time.Second
	t.Cleanup(func() { deliveryTimeout = prev }) // after the dispatchers stop
	outboxStores(t, func(t *testing.T, st session.Store, clock *storetest.Clock) {
		hs := newHookSink(t)
		smtp := newHangingSMTP(t)
		ctx := context.Background()
		for i := 0; i < 20; i++ {
			if err := st.Enqueue(ctx, mailTarget, notice(clock, i)); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 20; i++ {
			if err := st.Enqueue(ctx, hs.url, notice(clock, i)); err != nil {
				t.Fatal(err)
			}
		}
		testDispatcher(t, st, clock, &Notify{URL: hs.url}, mailServerAt(smtp.addr))
		// Twenty mails of 3 s each would hold a shared sender for a minute.
		eventually(t, "all 20 webhook notices delivered", func() bool { return hs.count() == 20 })
		eventually(t, "the mail attempt ended by its deadline", func() bool { _, _, closed := smtp.state(); return closed >= 1 })
		if _, most, _ := smtp.state(); most != 1 {
			t.Fatalf("the hanging mail server held %d connections at once: want 1", most)
		}
	})
}

// smtpSink is the least of a mail server, for a test: it takes every
// mail, and counts them.
type smtpSink struct {
	mu    sync.Mutex
	mails int
}

func (s *smtpSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mails
}

func startSMTPSink(t *testing.T, addr string) *smtpSink {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &smtpSink{}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *smtpSink) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(line string) { _, _ = io.WriteString(c, line+"\r\n") }
	say("220 sink.test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		switch verb := strings.ToUpper(strings.Fields(line + " x")[0]); verb {
		case "EHLO", "HELO":
			say("250 sink.test")
		case "DATA":
			say("354 go on")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			s.mu.Lock()
			s.mails++
			s.mu.Unlock()
			say("250 queued")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

// A mail server down for two hours (past the 127 s and 8 tries the
// retries once lasted) and then back: every mail queued during the
// outage is sent.
func TestMailOutageLongerThanTheOldRetriesIsDelivered(t *testing.T) {
	outboxStores(t, func(t *testing.T, st session.Store, clock *storetest.Clock) {
		addr := deadPort(t)
		ctx := context.Background()
		_, m, _ := testDispatcher(t, st, clock, nil, mailServerAt(addr))
		for i := 0; i < 3; i++ {
			if err := st.Enqueue(ctx, mailTarget, notice(clock, i)); err != nil {
				t.Fatal(err)
			}
		}
		retried := func() float64 { return m("retried") }
		for start := clock.Now(); clock.Now().Sub(start) < 2*time.Hour; {
			clock.Advance(30 * time.Second)
			time.Sleep(20 * time.Millisecond)
		}
		// 3 at once, at 1, 3, 7… 511 s, then every 5 minutes: more than
		// the 8 tries a mail once had.
		if r := retried(); r < 3*8 {
			t.Fatalf("%v attempts failed in two hours", r)
		}
		eventually(t, "an attempt after two hours of outage", func() bool {
			before := retried()
			clock.Advance(time.Minute)
			time.Sleep(20 * time.Millisecond)
			return retried() > before
		})
		if given, failed := m("given_up"), m("failed"); given+failed != 0 {
			t.Fatalf("after two hours %v mails given up, %v failed", given, failed)
		}
		sink := startSMTPSink(t, addr)
		eventually(t, "the 3 mails delivered once the server is back", func() bool {
			clock.Advance(30 * time.Second)
			time.Sleep(10 * time.Millisecond)
			return sink.count() == 3
		})
		// The sink counts a mail at its end of DATA, the sender after the
		// server's answer: the count follows a moment later.
		eventually(t, "3 counted as delivered", func() bool { return m("delivered") >= 3 })
		if d, n := m("delivered"), sink.count(); d != 3 || n != 3 {
			t.Fatalf("%v delivered, %d mails received: want 3", d, n)
		}
	})
}

// Past giveUpAfter a notice is given up: logged, and counted apart.
func TestNoticeGivenUpAfterADay(t *testing.T) {
	outboxStores(t, func(t *testing.T, st session.Store, clock *storetest.Clock) {
		ctx := context.Background()
		_, m, logs := testDispatcher(t, st, clock, nil, mailServerAt(deadPort(t)))
		if err := st.Enqueue(ctx, mailTarget, notice(clock, 1)); err != nil {
			t.Fatal(err)
		}
		given := func() float64 { return m("given_up") }
		eventually(t, "the mail given up after a day", func() bool {
			clock.Advance(time.Hour)
			time.Sleep(10 * time.Millisecond)
			return given() == 1
		})
		if n := logs.FilterMessageSnippet("notification given up").Len(); n != 1 {
			t.Fatalf("%d log lines for a notice given up: want 1", n)
		}
		if targets, err := st.Targets(ctx); err != nil || len(targets) != 0 {
			t.Fatalf("channels after the notice was given up: %v %v", targets, err)
		}
	})
}

// The configuration page and the runbook state the delivery policy the code has.
func TestDocsStateTheDeliveryPolicy(t *testing.T) {
	policy := []string{
		fmt.Sprintf("every %d minutes", int(retryMax.Minutes())),
		fmt.Sprintf("within %d hours", int(giveUpAfter.Hours())),
		fmt.Sprintf("each attempt gets %d s", int(deliveryTimeout.Seconds())),
		fmt.Sprintf("%d,%03d", session.OutboxCap/1000, session.OutboxCap%1000),
		`result="given_up"`,
	}
	for _, doc := range []string{"docs/configuration.md", "docs/operations.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(strings.Fields(string(b)), " ")
		for _, want := range policy {
			if !strings.Contains(text, want) {
				t.Errorf("%s does not say %q", doc, want)
			}
		}
	}
}
