package sessionauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/email"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// dispatcher delivers the outbox of one store, one per store in this
// process while a handler with a notify config uses it (dispatcherPool).
// The handlers hand it the receivers they send to, with their secrets.
//
// Each channel of the outbox (a webhook URL, or the mail server) has a
// sender of its own, with its own HTTP connections: a dead or hanging
// receiver holds up its own channel only, one connection at a time.
type dispatcher struct {
	st       session.Outbox
	logger   *zap.Logger
	now      func() time.Time
	consumer string
	// block is how long a Claim waits for a notice; tick, when not 0, the
	// longest real wait before the clock is read again (for tests that
	// move an injected clock).
	block, tick time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}
	// The newest config's metrics: each config load has its own metrics
	// registry, and a reload drops the old one from /metrics.
	metrics atomic.Pointer[metrics]
	// tracer: the tracer provider of the newest traced request that
	// queued a notice, for the delivery spans (notifytrace.go).
	tracer atomic.Pointer[trace.TracerProvider]

	mu        sync.Mutex
	stopped   bool
	receivers []receiver           // of the handlers using it, in provision order
	senders   map[string]bool      // targets whose sender runs
	unserved  map[string]time.Time // targets with notices and no receiver, since when
}

// receiver is what one handler sends to: a webhook, a mail server, or both.
type receiver struct {
	hook *Notify
	mail *email.Server
}

func newDispatcher(st session.Outbox, logger *zap.Logger, now func() time.Time) *dispatcher {
	ctx, cancel := context.WithCancel(context.Background())
	return &dispatcher{
		st: st, logger: logger, now: now, consumer: consumerName(), block: time.Second,
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
		senders: make(map[string]bool), unserved: make(map[string]time.Time),
	}
}

// start runs the channel finder; senders start as receivers and channels
// appear. done closes once all of them have stopped.
func (d *dispatcher) start() {
	d.wg.Add(1)
	go d.discover()
	go func() {
		d.wg.Wait()
		close(d.done)
	}()
}

// Destruct stops delivering once no handler uses the store's outbox.
func (d *dispatcher) Destruct() error {
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	d.cancel()
	<-d.done
	return nil
}

// targets of one receiver.
func (x receiver) targets() []string {
	var out []string
	if x.hook != nil {
		out = append(out, x.hook.URL)
	}
	if x.mail != nil {
		out = append(out, mailTarget)
	}
	return out
}

// serve adds a handler's receivers; release takes them away again.
func (d *dispatcher) serve(n *Notify, mail *email.Server, m *metrics) {
	d.metrics.Store(m)
	d.mu.Lock()
	defer d.mu.Unlock()
	x := receiver{n, mail}
	d.receivers = append(d.receivers, x)
	for _, target := range x.targets() {
		delete(d.unserved, target)
		d.runSender(target)
	}
}

func (d *dispatcher) release(n *Notify, mail *email.Server) {
	d.mu.Lock()
	defer d.mu.Unlock()
	x := receiver{n, mail}
	for i, y := range d.receivers {
		if y == x {
			d.receivers = append(d.receivers[:i:i], d.receivers[i+1:]...)
			break
		}
	}
	for _, target := range x.targets() {
		if !d.served(target) {
			d.unserved[target] = d.now()
		}
	}
}

// served: a receiver sends to target; d.mu is held.
func (d *dispatcher) served(target string) bool {
	for _, x := range d.receivers {
		if x.hook != nil && x.hook.URL == target || x.mail != nil && target == mailTarget {
			return true
		}
	}
	return false
}

// runSender starts target's sender unless it runs; d.mu is held.
func (d *dispatcher) runSender(target string) {
	if d.stopped || d.senders[target] {
		return
	}
	d.senders[target] = true
	d.wg.Add(1)
	go d.send(target)
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

// sleepUntil waits until the dispatcher's clock reads at least until;
// false when the dispatcher stops first.
func (d *dispatcher) sleepUntil(until time.Time) bool {
	for {
		wait := until.Sub(d.now())
		if wait <= 0 {
			return d.ctx.Err() == nil
		}
		if d.tick > 0 && wait > d.tick {
			wait = d.tick
		}
		timer := time.NewTimer(wait)
		select {
		case <-d.ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
		}
	}
}

// discover lists the store's channels now and then, and starts a sender
// for each that has none: notices queued before a restart for a receiver
// no config names any more are found (and dropped, after orphanGrace).
func (d *dispatcher) discover() {
	defer d.wg.Done()
	for {
		targets, err := d.st.Targets(d.ctx)
		if d.ctx.Err() != nil {
			return
		}
		if err != nil {
			d.logger.Warn("listing the notification queues", zap.Error(err))
		}
		d.mu.Lock()
		for _, target := range targets {
			if _, known := d.unserved[target]; !known && !d.served(target) {
				d.unserved[target] = d.now()
			}
			d.runSender(target)
		}
		d.mu.Unlock()
		if !d.sleepUntil(d.now().Add(discoverEvery)) {
			return
		}
	}
}

// outcome of one delivery, for the channel's pace.
type outcome int

const (
	sent    outcome = iota // the receiver took it
	failed                 // an attempt failed: the receiver may be down
	settled                // no attempt made or needed: given up, dropped
)

// send delivers target's channel until the dispatcher stops, or until the
// channel is empty and no config sends to target.
func (d *dispatcher) send(target string) {
	defer d.wg.Done()
	// Connections of this channel only: a receiver that hangs holds them,
	// never another channel's.
	client := &http.Client{Timeout: deliveryTimeout}
	defer client.CloseIdleConnections()
	failures, storeErrors := 0, 0
	for {
		if !d.awaitReceiver(target) {
			return
		}
		max := claimBatch
		if failures > 0 {
			max = 1 // find out whether the receiver is back with one notice
		}
		batch, err := d.st.Claim(d.ctx, d.consumer, target, max, d.block)
		if d.ctx.Err() != nil {
			d.putBack(batch)
			return
		}
		if err != nil {
			d.logger.Warn("reading the notification queue", zap.Error(err))
			storeErrors++
			if !d.sleepUntil(d.now().Add(min(backoff(storeErrors-1)/10, 5*time.Second))) {
				return
			}
			continue
		}
		storeErrors = 0
		if len(batch) == 0 {
			d.mu.Lock()
			if !d.served(target) {
				delete(d.senders, target)
				d.mu.Unlock()
				return
			}
			d.mu.Unlock()
			continue
		}
		var anySent, anyFailed bool
		for i, del := range batch {
			if d.ctx.Err() != nil {
				d.putBack(batch[i:])
				return
			}
			switch d.deliver(client, del) {
			case sent:
				anySent = true
			case failed:
				anyFailed = true
			}
			if anyFailed {
				// The receiver may be down: the rest of the batch waits
				// for the channel's next try rather than fail as well.
				d.putBack(batch[i+1:])
				break
			}
		}
		switch {
		case anyFailed:
			failures++
			if !d.sleepUntil(d.now().Add(backoff(failures - 1))) {
				return
			}
		case anySent:
			failures = 0
		}
	}
}

// putBack returns claimed deliveries not attempted, due now: for the
// channel's next try, or for the next dispatcher (or another gateway)
// when this one stops.
func (d *dispatcher) putBack(batch []session.Delivery) {
	bctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, del := range batch {
		del.Attempt-- // not tried: Retry counts one
		_ = d.st.Retry(bctx, del, d.now())
	}
}

// awaitReceiver holds a channel without a receiver for up to orphanGrace
// after it lost it (or was found): a config that sends there may come.
func (d *dispatcher) awaitReceiver(target string) bool {
	for {
		d.mu.Lock()
		since, unserved := d.unserved[target]
		if unserved && d.served(target) {
			delete(d.unserved, target)
			unserved = false
		}
		d.mu.Unlock()
		wait := since.Add(orphanGrace).Sub(d.now())
		if !unserved || wait <= 0 {
			return d.ctx.Err() == nil
		}
		// Look again within a second: serve may have come meanwhile.
		if !d.sleepUntil(d.now().Add(min(wait, time.Second))) {
			return false
		}
	}
}

// receiverName names a target in the log: the mail channel, or a
// webhook's scheme and host (its path or query may hold a secret).
func receiverName(target string) string {
	if target == mailTarget {
		return mailTarget
	}
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		return u.Scheme + "://" + u.Host
	}
	return "webhook"
}

func (d *dispatcher) deliver(client *http.Client, del session.Delivery) outcome {
	m := d.metrics.Load()
	bctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	log := []zap.Field{zap.String("event", del.Notice.Event), zap.String("receiver", receiverName(del.Target))}
	if waited := d.now().Sub(del.Notice.At); waited >= giveUpAfter {
		m.notification("given_up")
		d.logger.Error("notification given up: not delivered within "+giveUpAfter.String(),
			append(log, zap.Int("attempts", del.Attempt), zap.Duration("waited", waited))...)
		_ = d.st.Ack(bctx, del)
		return settled
	}
	var err error
	if del.Target == mailTarget {
		srv := d.mailServer()
		if srv == nil {
			m.notification("dropped")
			d.logger.Warn("notification mail dropped: no notify email config any more", zap.Strings("events", del.Notice.Events))
			_ = d.st.Ack(bctx, del)
			return settled
		}
		actx, cancel := context.WithTimeout(d.ctx, deliveryTimeout)
		sp := d.deliverySpan(del)
		err = sendMail(actx, srv, del.Notice)
		endDeliverySpan(sp, err)
		cancel()
	} else {
		secret, known := d.secret(del.Target)
		if !known {
			// No config sends there any more: nobody to sign for.
			m.notification("dropped")
			d.logger.Warn("notification dropped: no notify config for its receiver any more", log...)
			_ = d.st.Ack(bctx, del)
			return settled
		}
		actx, cancel := context.WithTimeout(d.ctx, deliveryTimeout)
		sp := d.deliverySpan(del)
		err = post(actx, client, del.Target, secret, del.Notice)
		endDeliverySpan(sp, err)
		cancel()
	}
	if d.ctx.Err() != nil {
		// Stopping cut the attempt short: the notice goes back.
		d.putBack([]session.Delivery{del})
		return settled
	}
	switch {
	case err == nil:
		m.notification("delivered")
		_ = d.st.Ack(bctx, del)
		return sent
	case errors.Is(err, email.ErrNoAddress) || errors.Is(err, email.ErrNothingToSay):
		// Retrying cannot help.
		m.notification("failed")
		d.logger.Error("notification mail not sent", append(log, zap.Error(err))...)
		_ = d.st.Ack(bctx, del)
		return settled
	case errors.Is(err, email.ErrNoSTARTTLS):
		// Not sent in clear; said at once, as the operator must act.
		d.logger.Error("notification mail not sent: the mail server does not offer STARTTLS "+
			"(set tls implicit for port 465, or tls none to send in clear)", zap.Int("attempt", del.Attempt+1), zap.Error(err))
	}
	m.notification("retried")
	wait := backoff(del.Attempt)
	if c := d.logger.Check(zap.InfoLevel, "notification failed, will retry"); c != nil {
		c.Write(append(log, zap.Duration("in", wait), zap.Int("attempt", del.Attempt+1), zap.Error(err))...)
	}
	if rerr := d.st.Retry(bctx, del, d.now().Add(wait)); rerr != nil {
		d.logger.Error("scheduling a notification retry", zap.Error(rerr))
	}
	return failed
}
