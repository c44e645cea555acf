package session

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// RevocationFeed is a store that announces ended (and changed) sessions
// to every gateway that shares it: Redis's pub/sub channel. The file and
// memory stores have one process, and need none.
type RevocationFeed interface {
	// FollowRevocations calls up(true) once subscribed and up(false)
	// when the link is lost (announcements may then be missed), and heard
	// with each announcement's payload (RevocationChannel's), until ctx
	// ends. It subscribes again by itself.
	FollowRevocations(ctx context.Context, up func(bool), heard func(payload string))
}

// FollowRevocations listens on the store's revocation channel.
func (r *Redis) FollowRevocations(ctx context.Context, up func(bool), heard func(string)) {
	for ctx.Err() == nil {
		ps := r.client.Subscribe(ctx, RevocationChannel(r.prefix))
		listenRevocations(ctx, ps, up, heard)
		_ = ps.Close()
		up(false)
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// listenRevocations reads the channel until the link fails; a quiet
// link is pinged.
func listenRevocations(ctx context.Context, ps *redis.PubSub, up func(bool), heard func(string)) {
	for {
		msg, err := ps.ReceiveTimeout(ctx, 2*time.Second)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				if perr := ps.Ping(ctx); perr == nil {
					continue
				}
			}
			return
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				up(true)
			}
		case *redis.Message:
			heard(m.Payload)
		}
	}
}

var _ RevocationFeed = (*Redis)(nil)
