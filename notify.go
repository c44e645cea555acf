package sessionauth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

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

// Delivery: a receiver gets deliveryTimeout per attempt. A notice whose
// attempt failed is due again retryBase·2^attempt later, at most retryMax,
// and is given up once it has waited giveUpAfter; while a channel's
// receiver fails, the channel tries one notice at a time at that pace.
var (
	deliveryTimeout = 10 * time.Second
	retryBase       = time.Second
	retryMax        = 5 * time.Minute
	giveUpAfter     = 24 * time.Hour
)

const (
	// claimBatch bounds what one claim takes: the claimed deliveries wait
	// their turn, each up to deliveryTimeout, and 4 of them are done well
	// within a minute, after which another gateway sharing Redis would
	// take them over (session.staleClaim).
	claimBatch = 4
	// orphanGrace is how long notices for a receiver no config names wait
	// for one that does (a start, a reload) before they are dropped.
	orphanGrace = time.Minute
	// discoverEvery is how often the dispatcher lists the store's
	// channels, to find those of receivers no config names.
	discoverEvery = time.Minute
)

// backoff is the wait after the n-th failure in a row (n from 0).
func backoff(n int) time.Duration {
	if n >= 20 {
		return retryMax
	}
	return min(retryBase<<n, retryMax)
}

// notifier is the notifications part (SPEC 7): it queues the notices
// the config asks for, to the webhook and as mails, in the store's
// outbox; the dispatcher delivers them later, so a slow or dead receiver
// never touches the request. nil when neither notify nor notify email
// is on.
type notifier struct {
	hook      *Notify      // nil unless notify
	mail      *NotifyEmail // nil unless notify email
	baseURL   string
	endpoints string
	store     session.Store
	logger    *zap.Logger
	metrics   *metrics
	links     linkMaker
	// tracers hands a traced request's tracer provider to the dispatcher
	// (notifytrace.go).
	tracers func(trace.TracerProvider)
}

// linkMaker makes the "Not you?" links the notices carry (linkkey.go,
// site.go).
type linkMaker interface {
	linkBase(r *http.Request) string
	linkToken(s *session.Session) string
}

func newNotifier(h *Handler) *notifier {
	if h.Notify == nil && h.NotifyEmail == nil {
		return nil
	}
	return &notifier{hook: h.Notify, mail: h.NotifyEmail, baseURL: h.BaseURL, endpoints: h.Endpoints,
		store: h.store, logger: h.logger, metrics: h.metrics, links: h,
		tracers: func(tp trace.TracerProvider) {
			if h.dispatcher != nil {
				h.dispatcher.useTracer(tp)
			}
		}}
}

// notify queues the notices of event about s that the config asks for:
// to the webhook, and a mail for the events mails tell of. r is nil for
// sessions minted by the admin API.
func (n *notifier) notify(r *http.Request, event string, s *session.Session, at time.Time) {
	if n == nil {
		return
	}
	n.webhook(r, event, s, at)
	n.mailOf(r, []string{event}, s, at)
}

func (n *notifier) webhook(r *http.Request, event string, s *session.Session, at time.Time) {
	if !n.hookWants(event) {
		return
	}
	notice := webhookNotice(event, s, at)
	if event != noticeRevoke && r != nil {
		notice.RevokeURL = n.revokeURL(r, s)
	}
	n.traceNotice(r, &notice)
	ctx := context.Background()
	if err := n.store.Enqueue(ctx, n.hook.URL, notice); err != nil {
		n.metrics.notification("dropped")
		n.logger.Error("queueing a notification", zap.String("event", event), zap.Error(err))
	}
}

// webhookNotice is the notice of event about s, without its link.
func webhookNotice(event string, s *session.Session, at time.Time) session.Notice {
	return session.Notice{
		Event: event, At: at.UTC(), UserID: s.UserID, SessionID: s.ID,
		DeviceName: s.Device, Browser: s.Browser, OS: s.OS, IP: s.IP, Country: s.Country, City: s.City,
	}
}

// hookWants: the webhook is on and takes event.
func (n *notifier) hookWants(event string) bool {
	if n == nil || n.hook == nil {
		return false
	}
	if len(n.hook.Events) == 0 {
		return true
	}
	for _, e := range n.hook.Events {
		if e == event {
			return true
		}
	}
	return false
}

// ended queues a revoke notice per ended session, in one store
// operation, when the webhook takes them. Mails tell of sign-ins only
// (email.Events): an end sends none.
func (n *notifier) ended(ctx context.Context, ended []*session.Session, at time.Time) {
	if !n.hookWants(noticeRevoke) {
		return
	}
	hooks := make([]session.Notice, len(ended))
	for i, s := range ended {
		hooks[i] = webhookNotice(noticeRevoke, s, at)
		n.traceNoticeIn(ctx, &hooks[i])
	}
	queued, err := session.EnqueueMany(context.Background(), n.store, n.hook.URL, hooks)
	if dropped := len(hooks) - queued; dropped > 0 {
		for range dropped {
			n.metrics.notification("dropped")
		}
		n.logger.Error("queueing a notification", zap.String("event", noticeRevoke), zap.Int("dropped", dropped), zap.Error(err))
	}
}

// login sends what a new session calls for: a webhook notice per
// event, and one mail that tells of them all.
func (n *notifier) login(r *http.Request, s *session.Session) {
	if n == nil {
		return
	}
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
		n.webhook(r, e, s, s.CreatedAt)
	}
	n.mailOf(r, events, s, s.CreatedAt)
}

// validHost is a host[:port] fit to put in a link: the request's Host is
// the client's word, so anything odd gets no link rather than a bad one.
var validHost = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$`)

func (n *notifier) revokeURL(r *http.Request, s *session.Session) string {
	base := n.links.linkBase(r)
	if base == "" {
		return ""
	}
	return base + n.endpoints + "/revoke?token=" + n.links.linkToken(s)
}

// post sends one notice, signed: X-Signature-256: sha256=<hex HMAC of the body>.
// The body has SPEC 7's fields only: what a mail needs stays out.
func post(ctx context.Context, client *http.Client, target, secret string, n session.Notice) error {
	n.Events, n.Email, n.Name, n.SessionsURL, n.Trace, n.Passkey, n.ResetURL = nil, "", "", "", "", "", ""
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
