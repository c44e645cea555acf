package session

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// an error unless it is noeviction. Every key the gateway writes has a
// TTL, so the volatile-* policies may evict any of them too, and an
// evicted user index would hide that user's sessions from every
// revocation (they are refused instead: see session.Unlisted).
type evictionCheck struct {
	once   sync.Once
	ready  chan struct{} // closed once client is set
	client redis.UniversalClient
	logger *zap.Logger
}

func (e *evictionCheck) onConnect(context.Context, *redis.Conn) error {
	e.once.Do(func() { go e.run() })
	return nil
}

func (e *evictionCheck) run() {
	<-e.ready
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	check := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "memory").Result()
		if err != nil {
			return err
		}
		policy := infoField(info, "maxmemory_policy")
		if policy == "noeviction" {
			e.logger.Debug("Redis evicts no keys (maxmemory-policy noeviction)", zap.String("address", c.Options().Addr))
			return nil
		}
		e.logger.Error("Redis may evict the gateway's keys: set maxmemory-policy noeviction "+
			"(sessions whose user index is evicted are refused, and other evicted keys sign users out)",
			zap.String("address", c.Options().Addr), zap.String("maxmemory_policy", policy),
			zap.String("maxmemory", infoField(info, "maxmemory_human")))
		return nil
	}
	var err error
	switch c := e.client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, check)
	case *redis.Client:
		err = check(ctx, c)
	}
	if err != nil {
		e.logger.Warn("could not read Redis's eviction policy, which must be noeviction (the ACL user needs +info)", zap.Error(err))
	}
}

// infoField finds "name:value" in an INFO reply.
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}
