package sessionauth

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// metrics are the SPEC section 9 collectors. Labels come from small fixed
// sets: never a user, a session or an IP. Methods are nil-safe.
type metrics struct {
	requests      *prometheus.CounterVec
	byOutcome     map[string]prometheus.Counter // resolved once: no label hashing per request
	logins        prometheus.Counter
	logouts       prometheus.Counter
	revocations   *prometheus.CounterVec
	storeSeconds  *prometheus.HistogramVec
	touches       prometheus.Counter
	notifications *prometheus.CounterVec
	rateLimited   *prometheus.CounterVec
	deniedByRule  *prometheus.CounterVec
	// Beyond the SPEC's list: what a full or evicting Redis did.
	touchesRefused prometheus.Counter
	unlisted       prometheus.Counter
}

const metricsNS, metricsSub = "caddy", "session_auth"

func newMetrics(reg *prometheus.Registry, logger *zap.Logger) *metrics {
	if reg == nil {
		return nil
	}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: metricsNS, Subsystem: metricsSub, Name: name, Help: help}
	}
	m := &metrics{
		requests: registerOrExisting(reg, logger, prometheus.NewCounterVec(prometheus.CounterOpts(
			opts("requests_total", "Requests seen by session_auth, by outcome.")), []string{"outcome"})),
		logins: registerOrExisting(reg, logger, prometheus.NewCounter(prometheus.CounterOpts(
			opts("logins_total", "Sessions minted.")))),
		logouts: registerOrExisting(reg, logger, prometheus.NewCounter(prometheus.CounterOpts(
			opts("logouts_total", "Sessions ended by their user signing out.")))),
		revocations: registerOrExisting(reg, logger, prometheus.NewCounterVec(prometheus.CounterOpts(
			opts("revocations_total", "Sessions revoked, by actor.")), []string{"actor"})),
		storeSeconds: registerOrExisting(reg, logger, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNS, Subsystem: metricsSub, Name: "store_duration_seconds",
			Help:    "Duration of session store operations.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"op"})),
		touches: registerOrExisting(reg, logger, prometheus.NewCounter(prometheus.CounterOpts(
			opts("touches_total", "Activity writes.")))),
		notifications: registerOrExisting(reg, logger, prometheus.NewCounterVec(prometheus.CounterOpts(
			opts("notifications_total", "Notification deliveries, by result.")), []string{"result"})),
		rateLimited: registerOrExisting(reg, logger, prometheus.NewCounterVec(prometheus.CounterOpts(
			opts("rate_limited_total", "Requests refused with 429, by limit (login, guess, or code: an account's wrong second-factor codes).")), []string{"limit"})),
		deniedByRule: registerOrExisting(reg, logger, prometheus.NewCounterVec(prometheus.CounterOpts(
			opts("denied_total", "Requests with a session that session_require refused, by the rule kind that failed.")), []string{"rule"})),
		touchesRefused: registerOrExisting(reg, logger, prometheus.NewCounter(prometheus.CounterOpts(
			opts("touches_refused_total", "Activity writes the store refused for lack of memory; the requests were served without them.")))),
		unlisted: registerOrExisting(reg, logger, prometheus.NewCounter(prometheus.CounterOpts(
			opts("unlisted_sessions_total", "Requests refused because their user's index no longer lists the session (evicted by Redis).")))),
	}
	m.byOutcome = map[string]prometheus.Counter{}
	for _, o := range []string{outcomeAuthenticated, outcomeAnonymous, outcomeUnauthenticated,
		outcomeExpired, outcomeRevoked, outcomeInvalid, outcomeStoreError} {
		m.byOutcome[o] = m.requests.WithLabelValues(o)
	}
	return m
}

// registerOrExisting registers c, or returns the collector already
// registered under the same name, so a config reload never panics.
func registerOrExisting[C prometheus.Collector](reg *prometheus.Registry, logger *zap.Logger, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	logger.Error("registering metric", zap.Error(err))
	return c
}

func (m *metrics) request(outcome string) {
	if m != nil {
		m.byOutcome[outcome].Inc()
	}
}

func (m *metrics) login() {
	if m != nil {
		m.logins.Inc()
	}
}

func (m *metrics) logout() {
	if m != nil {
		m.logouts.Inc()
	}
}

func (m *metrics) revocation(actor string, n int) {
	if m != nil && n > 0 {
		m.revocations.WithLabelValues(actor).Add(float64(n))
	}
}

func (m *metrics) touch() {
	if m != nil {
		m.touches.Inc()
	}
}

func (m *metrics) touchRefused() {
	if m != nil {
		m.touchesRefused.Inc()
	}
}

func (m *metrics) unlistedSession() {
	if m != nil {
		m.unlisted.Inc()
	}
}

func (m *metrics) limited(kind string) {
	if m != nil {
		m.rateLimited.WithLabelValues(kind).Inc()
	}
}

func (m *metrics) denied(rule string) {
	if m != nil {
		m.deniedByRule.WithLabelValues(rule).Inc()
	}
}

func (m *metrics) notification(result string) {
	if m != nil {
		m.notifications.WithLabelValues(result).Inc()
	}
}

// storeObserved is session.Timed's Observe: every store operation's
// duration, errors included, under its operation's name.
func (m *metrics) storeObserved(op string, took time.Duration, _ error) {
	if m != nil {
		m.storeSeconds.WithLabelValues(op).Observe(took.Seconds())
	}
}
