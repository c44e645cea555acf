package sessionauth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/email"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// Notification events (SPEC section 7).
const (
	noticeNewLogin         = "new_login"
	noticeNewDevice        = "new_device"
	noticeNewCountry       = "new_country"
	noticeImpossibleTravel = "impossible_travel"
	noticeIPChange         = "ip_change"
	noticeRevoke           = "revoke"
	noticeTokenCreated     = "token_created"
)

// Delivery: a receiver gets deliveryTimeout per attempt; a failed attempt
// is retried after retryBase·2^attempt (at most retryMax), maxAttempts in all.
var (
	deliveryTimeout = 10 * time.Second
	retryBase       = time.Second
	retryMax        = 5 * time.Minute
	maxAttempts     = 8
)

// notify queues the notices of event about s that the config asks for:
// to the webhook, and a mail for the events mails tell of. Delivery
// happens later, in the dispatcher: a slow or dead receiver never touches
// the request. r is nil for sessions minted by the admin API.
func (h *Handler) notify(r *http.Request, event string, s *session.Session, at time.Time) {
	h.notifyWebhook(r, event, s, at)
	h.notifyMail(r, []string{event}, s, at)
}

func (h *Handler) notifyWebhook(r *http.Request, event string, s *session.Session, at time.Time) {
	if h.Notify == nil || !h.notifyWants(event) {
		return
	}
	n := session.Notice{
		Event: event, At: at.UTC(), UserID: s.UserID, SessionID: s.ID,
		DeviceName: s.Device, Browser: s.Browser, OS: s.OS, IP: s.IP, Country: s.Country, City: s.City,
	}
	if event != noticeRevoke && r != nil {
		n.RevokeURL = h.revokeURL(r, s)
	}
	ctx, cancel := h.storeContext(context.Background())
	defer cancel()
	if err := h.store.Enqueue(ctx, h.Notify.URL, n); err != nil {
		h.metrics.notification("dropped")
		h.logger.Error("queueing a notification", zap.String("event", event), zap.Error(err))
	}
}

func (h *Handler) notifyWants(event string) bool {
	if len(h.Notify.Events) == 0 {
		return true
	}
	for _, e := range h.Notify.Events {
		if e == event {
			return true
		}
	}
	return false
}

// notifyLogin sends what a new session calls for: a webhook notice per
// event, and one mail that tells of them all.
func (h *Handler) notifyLogin(r *http.Request, s *session.Session) {
	var events []string
	if s.OthersActive > 0 {
		events = append(events, noticeNewLogin)
	}
	for _, fe := range [...]struct{ flag, event string }{
		{session.FlagNewDevice, noticeNewDevice}, {session.FlagNewCountry, noticeNewCountry},
		{session.FlagImpossibleTravel, noticeImpossibleTravel},
	} {
		if session.HasFlag(s.Risk, fe.flag) {
			events = append(events, fe.event)
		}
	}
	for _, e := range events {
		h.notifyWebhook(r, e, s, s.CreatedAt)
	}
	h.notifyMail(r, events, s, s.CreatedAt)
}

// notifyEnded tells the user a session was ended by someone (not a sign-out).
func (h *Handler) notifyEnded(r *http.Request, s *session.Session, at time.Time, _ string) {
	h.notify(r, noticeRevoke, s, at)
}

// validHost is a host[:port] fit to put in a link: the request's Host is
// the client's word, so anything odd gets no link rather than a bad one.
var validHost = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$`)

func (h *Handler) revokeURL(r *http.Request, s *session.Session) string {
	base := h.linkBase(r)
	if base == "" {
		return ""
	}
	return base + h.Endpoints + "/revoke?token=" + h.linkToken(s)
}

// dispatcher delivers the outbox of one store, one per store in this
// process while a handler with a notify config uses it (dispatcherPool).
// The handlers hand it the receivers they send to, with their secrets.
type dispatcher struct {
	cancel context.CancelFunc
	done   chan struct{}
	// The newest config's metrics: each config load has its own metrics
	// registry, and a reload drops the old one from /metrics.
	metrics atomic.Pointer[metrics]

	mu        sync.Mutex
	receivers []receiver // of the handlers using it, in provision order
}

// receiver is what one handler sends to: a webhook, a mail server, or both.
type receiver struct {
	hook *Notify
	mail *email.Server
}

// Destruct stops delivering once no handler uses the store's outbox.
func (d *dispatcher) Destruct() error {
	d.cancel()
	<-d.done
	return nil
}

// serve adds a handler's receivers; release takes them away again.
func (d *dispatcher) serve(n *Notify, mail *email.Server, m *metrics) {
	d.mu.Lock()
	d.receivers = append(d.receivers, receiver{n, mail})
	d.mu.Unlock()
	d.metrics.Store(m)
}

func (d *dispatcher) release(n *Notify, mail *email.Server) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, x := range d.receivers {
		if x == (receiver{n, mail}) {
			d.receivers = append(d.receivers[:i:i], d.receivers[i+1:]...)
			return
		}
	}
}

// secret is the secret of the newest config that sends to target; during
// a reload the new config's word counts.
func (d *dispatcher) secret(target string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.receivers) - 1; i >= 0; i-- {
		if n := d.receivers[i].hook; n != nil && n.URL == target {
			return n.Secret, true
		}
	}
	return "", false
}

// mailServer is the mail server of the newest config that has one.
func (d *dispatcher) mailServer() *email.Server {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.receivers) - 1; i >= 0; i-- {
		if m := d.receivers[i].mail; m != nil {
			return m
		}
	}
	return nil
}

func (d *dispatcher) run(ctx context.Context, st session.Outbox, logger *zap.Logger, now func() time.Time) {
	defer close(d.done)
	consumer := consumerName()
	client := &http.Client{Timeout: deliveryTimeout}
	pause := 0 * time.Second
	for ctx.Err() == nil {
		if pause > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
		}
		batch, err := st.Claim(ctx, consumer, 16, time.Second)
		if err != nil {
			if ctx.Err() == nil {
				logger.Warn("reading the notification queue", zap.Error(err))
			}
			pause = min(2*pause+100*time.Millisecond, 5*time.Second)
			continue
		}
		pause = 0
		for _, del := range batch {
			d.deliver(ctx, st, client, del, logger, d.metrics.Load(), now)
		}
	}
}

func (d *dispatcher) deliver(ctx context.Context, st session.Outbox, client *http.Client, del session.Delivery, logger *zap.Logger, m *metrics, now func() time.Time) {
	var err error
	if del.Target == mailTarget {
		srv := d.mailServer()
		if srv == nil {
			m.notification("dropped")
			logger.Warn("notification mail dropped: no notify email config any more", zap.Strings("events", del.Notice.Events))
			_ = st.Ack(ctx, del)
			return
		}
		actx, cancel := context.WithTimeout(ctx, deliveryTimeout)
		err = sendMail(actx, srv, del.Notice)
		cancel()
	} else {
		secret, known := d.secret(del.Target)
		if !known {
			// No config sends there any more: nobody to sign for.
			m.notification("dropped")
			logger.Warn("notification dropped: no notify config for its receiver any more", zap.String("event", del.Notice.Event))
			_ = st.Ack(ctx, del)
			return
		}
		err = post(ctx, client, del.Target, secret, del.Notice)
	}
	bctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch {
	case err == nil:
		m.notification("delivered")
		_ = st.Ack(bctx, del)
	case errors.Is(err, email.ErrNoAddress) || errors.Is(err, email.ErrNothingToSay):
		// Retrying cannot help.
		m.notification("failed")
		logger.Error("notification mail not sent", zap.String("event", del.Notice.Event), zap.Error(err))
		_ = st.Ack(bctx, del)
	case errors.Is(err, email.ErrNoSTARTTLS):
		// Not sent in clear; said at once, as the operator must act.
		logger.Error("notification mail not sent: the mail server does not offer STARTTLS "+
			"(set tls implicit for port 465, or tls none to send in clear)", zap.Int("attempt", del.Attempt+1), zap.Error(err))
		retryOrGiveUp(bctx, st, del, err, logger, m, now)
	default:
		retryOrGiveUp(bctx, st, del, err, logger, m, now)
	}
}

func retryOrGiveUp(bctx context.Context, st session.Outbox, del session.Delivery, err error, logger *zap.Logger, m *metrics, now func() time.Time) {
	switch {
	case del.Attempt+1 >= maxAttempts:
		m.notification("failed")
		logger.Error("notification given up", zap.String("event", del.Notice.Event), zap.Int("attempts", del.Attempt+1), zap.Error(err))
		_ = st.Ack(bctx, del)
	default:
		m.notification("retried")
		wait := min(retryBase<<del.Attempt, retryMax)
		if c := logger.Check(zap.InfoLevel, "notification failed, will retry"); c != nil {
			c.Write(zap.String("event", del.Notice.Event), zap.Duration("in", wait), zap.Error(err))
		}
		if rerr := st.Retry(bctx, del, now().Add(wait)); rerr != nil {
			logger.Error("scheduling a notification retry", zap.Error(rerr))
		}
	}
}

// post sends one notice, signed: X-Signature-256: sha256=<hex HMAC of the body>.
// The body has SPEC 7's fields only: what a mail needs stays out.
func post(ctx context.Context, client *http.Client, target, secret string, n session.Notice) error {
	n.Events, n.Email, n.Name, n.SessionsURL = nil, "", "", ""
	body, err := json.Marshal(n)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "caddy-sessionauth")
	if secret != "" {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		req.Header.Set("X-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return &deliveryError{res.StatusCode}
	}
	return nil
}

type deliveryError struct{ status int }

func (e *deliveryError) Error() string { return "receiver answered " + http.StatusText(e.status) }

func consumerName() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return strings.ReplaceAll(host, " ", "_") + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
}
