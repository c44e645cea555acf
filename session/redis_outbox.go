package session

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	outboxGroup = "sessionauth"
	outboxTTL   = 7 * 24 * time.Hour // an outbox nobody reads for a week goes
	staleClaim  = time.Minute        // a delivery claimed this long ago by a silent gateway is taken over
)

// outboxKeys are the keys of target's channel: the stream of due
// deliveries and the sorted set of retries, under a hash tag of the
// channel's own, so that channels spread over a cluster.
func (r *Redis) outboxKeys(target string) []string {
	tag := r.prefix + "{notify:" + hex.EncodeToString(channelID(target)) + "}"
	return []string{tag + ":q", tag + ":r"}
}

// legacyOutboxKeys are the one outbox of every target that versions
// before the channels kept; Targets moves what it holds into them.
func (r *Redis) legacyOutboxKeys() []string {
	return []string{r.prefix + "{notify}:q", r.prefix + "{notify}:r"}
}

// Enqueue implements Store.
func (r *Redis) Enqueue(ctx context.Context, target string, n Notice) error {
	err := enqueueScript.Run(ctx, r.client, r.outboxKeys(target), encodeEntry(target, n, 0), OutboxCap, outboxTTL.Milliseconds()).Err()
	if err != nil && strings.HasPrefix(err.Error(), "OUTBOXFULL") {
		return ErrOutboxFull
	}
	if err != nil {
		return fmt.Errorf("queueing notification: %w", err)
	}
	r.listTarget(ctx, target)
	return nil
}

// Claim implements Store.
func (r *Redis) Claim(ctx context.Context, consumer, target string, max int, block time.Duration) ([]Delivery, error) {
	return r.claimFrom(ctx, r.outboxKeys(target), ms(r.now()), consumer, max, block)
}

// claimFrom claims from the stream and retries of keys: retries due by
// dueBy first join the stream.
func (r *Redis) claimFrom(ctx context.Context, keys []string, dueBy int64, consumer string, max int, block time.Duration) ([]Delivery, error) {
	if err := promoteScript.Run(ctx, r.client, keys, dueBy, max, outboxTTL.Milliseconds()).Err(); err != nil {
		return nil, fmt.Errorf("claiming notifications: %w", err)
	}
	// Deliveries a dead gateway claimed and never acknowledged.
	stale, _, err := r.client.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream: keys[0], Group: outboxGroup, Consumer: consumer, MinIdle: staleClaim, Start: "0-0", Count: int64(max),
	}).Result()
	if err != nil && !isNoGroup(err) {
		return nil, fmt.Errorf("claiming notifications: %w", err)
	}
	if len(stale) > 0 {
		return decodeMessages(stale), nil
	}
	for try := 0; try < 2; try++ {
		streams, err := r.client.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: outboxGroup, Consumer: consumer, Streams: []string{keys[0], ">"}, Count: int64(max), Block: block,
		}).Result()
		switch {
		case errors.Is(err, redis.Nil):
			return nil, nil
		case isNoGroup(err):
			// From the start of the stream: what was queued before any
			// gateway read it is delivered too.
			if err := r.client.XGroupCreateMkStream(ctx, keys[0], outboxGroup, "0").Err(); err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
				return nil, fmt.Errorf("creating the notification group: %w", err)
			}
			_ = r.client.PExpire(ctx, keys[0], outboxTTL).Err()
			continue
		case err != nil:
			return nil, fmt.Errorf("claiming notifications: %w", err)
		}
		var out []Delivery
		for _, s := range streams {
			out = append(out, decodeMessages(s.Messages)...)
		}
		return out, nil
	}
	return nil, nil
}

func isNoGroup(err error) bool { return err != nil && strings.Contains(err.Error(), "NOGROUP") }

func decodeMessages(msgs []redis.XMessage) []Delivery {
	var out []Delivery
	for _, m := range msgs {
		e, _ := m.Values["e"].(string)
		if d, ok := decodeEntry(m.ID, e); ok {
			out = append(out, d)
		}
	}
	return out
}

// Ack implements Store.
func (r *Redis) Ack(ctx context.Context, d Delivery) error {
	if err := ackScript.Run(ctx, r.client, r.outboxKeys(d.Target)[:1], outboxGroup, d.ID).Err(); err != nil {
		return fmt.Errorf("acknowledging notification: %w", err)
	}
	return nil
}

// Retry implements Store.
func (r *Redis) Retry(ctx context.Context, d Delivery, at time.Time) error {
	err := retryScript.Run(ctx, r.client, r.outboxKeys(d.Target), outboxGroup, d.ID,
		encodeEntry(d.Target, d.Notice, d.Attempt+1), ms(at), outboxTTL.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("scheduling a notification retry: %w", err)
	}
	return nil
}

// targetsKey is the sorted set of the targets notices were queued for,
// scored by when: Targets reads it (a SCAN would need a command the
// gateway's Redis user does not have).
func (r *Redis) targetsKey() string { return r.prefix + "{notify}:targets" }

// listTarget records that target has a channel, at most once an hour per
// process: the set outlives a channel by as long as a channel outlives
// its last notice.
func (r *Redis) listTarget(ctx context.Context, target string) {
	now := r.now()
	if last, ok := r.targets.Load(target); ok && now.Sub(last.(time.Time)) < time.Hour {
		return
	}
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, r.targetsKey(), redis.Z{Score: float64(ms(now)), Member: target})
		p.PExpire(ctx, r.targetsKey(), outboxTTL)
		return nil
	})
	if err == nil {
		r.targets.Store(target, now)
	}
}

// Targets implements Store: the listed targets whose channel holds a
// notice. Notices in the outbox of an older version are moved into their
// channels first.
func (r *Redis) Targets(ctx context.Context) ([]string, error) {
	if err := r.moveLegacyOutbox(ctx); err != nil {
		return nil, err
	}
	key := r.targetsKey()
	if err := r.client.ZRemRangeByScore(ctx, key, "-inf", fmt.Sprint(ms(r.now().Add(-outboxTTL)))).Err(); err != nil {
		return nil, fmt.Errorf("listing notification channels: %w", err)
	}
	listed, err := r.client.ZRange(ctx, key, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("listing notification channels: %w", err)
	}
	var out []string
	for _, target := range listed {
		keys := r.outboxKeys(target)
		var due, retrying *redis.IntCmd
		if _, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			due, retrying = p.XLen(ctx, keys[0]), p.ZCard(ctx, keys[1])
			return nil
		}); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("listing notification channels: %w", err)
		}
		if due.Val()+retrying.Val() > 0 {
			out = append(out, target)
		}
	}
	slices.Sort(out)
	return out, nil
}

// moveLegacyOutbox moves the notices of the single outbox older versions
// kept into their targets' channels, each once: it claims them through
// the old consumer group, as a delivery (so that of several gateways only
// one moves each), and acknowledges each once it is in its channel.
func (r *Redis) moveLegacyOutbox(ctx context.Context) error {
	keys := r.legacyOutboxKeys()
	n, err := r.client.Exists(ctx, keys...).Result()
	if err != nil || n == 0 {
		return err
	}
	for {
		// Every retry, due or not, and no waiting: the channels keep
		// each notice's attempts, and its due time starts afresh.
		batch, err := r.claimFrom(ctx, keys, ms(r.now().Add(outboxTTL)), "migration", 100, -1)
		if err != nil || len(batch) == 0 {
			return err
		}
		for _, d := range batch {
			err := enqueueScript.Run(ctx, r.client, r.outboxKeys(d.Target), encodeEntry(d.Target, d.Notice, d.Attempt), OutboxCap, outboxTTL.Milliseconds()).Err()
			if err != nil && !strings.HasPrefix(err.Error(), "OUTBOXFULL") {
				return fmt.Errorf("moving a queued notification: %w", err)
			}
			r.listTarget(ctx, d.Target)
			if err := ackScript.Run(ctx, r.client, keys[:1], outboxGroup, d.ID).Err(); err != nil {
				return fmt.Errorf("moving a queued notification: %w", err)
			}
		}
	}
}
