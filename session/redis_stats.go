package session

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keeps the console's counters in a hash written by the scripts
// that write the events it counts (note_event and count_stat in
// redis_scripts.go), as the last of their KEYS: no extra command and no
// extra round trip per request. On one master (standalone, Sentinel) it
// is one hash, <prefix>{stats}:n. On a cluster a script may touch only
// its user's slot, so there is one hash per slot, named by a tag that
// hashes to that slot (slotTags); Stats reads them all in one pipeline.

// countsStats tells the scripts run over a user's sessions that count.
func countsStats(script *redis.Script) bool {
	return script == createScript || script == endUserScript || script == endWithTokensScript
}

// statsKey is the stats hash that a script touching key writes.
func (r *Redis) statsKey(key string) string {
	if _, ok := r.client.(*redis.ClusterClient); !ok {
		return r.prefix + "{stats}:n"
	}
	return r.prefix + "{" + slotTags()[keySlot(key)] + "}:n"
}

// clusterSlots is Redis Cluster's number of hash slots.
const clusterSlots = 16384

// keySlot is the cluster slot of key: CRC16 of its hash tag (the first
// {…} with something inside), else of the whole key.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key)) % clusterSlots
}

// crc16 is CRC-16/XMODEM, the checksum Redis Cluster slots keys by.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slotTags are, for each cluster slot, a short tag that hashes to it:
// found once by counting until every slot has one (about 170,000 tries).
var slotTags = sync.OnceValue(func() []string {
	tags := make([]string, clusterSlots)
	left := clusterSlots
	for n := 0; left > 0; n++ {
		t := "st" + strconv.FormatInt(int64(n), 36)
		if s := int(crc16(t)) % clusterSlots; tags[s] == "" {
			tags[s] = t
			left--
		}
	}
	return tags
})

// Stats implements Store: the stats hashes in one pipeline, then a SCAN
// of the sessions (at most maxStatsWalk of them) for the breakdowns.
func (r *Redis) Stats(ctx context.Context, now time.Time, p Policy) (*Stats, error) {
	keys := []string{r.prefix + "{stats}:n"}
	if _, ok := r.client.(*redis.ClusterClient); ok {
		keys = keys[:0]
		for _, t := range slotTags() {
			keys = append(keys, r.prefix+"{"+t+"}:n")
		}
	}
	pipe := r.client.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.HGetAll(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("reading the counters: %w", err)
	}
	st := newStats(now)
	for _, c := range cmds {
		addStatsHash(st, c.Val())
	}
	st.keepRecent()
	if err := r.walkLive(ctx, st, now, p); err != nil {
		return nil, fmt.Errorf("reading the live sessions: %w", err)
	}
	return st, nil
}

// addStatsHash adds one stats hash to st.
func addStatsHash(st *Stats, h map[string]string) {
	for f, v := range h {
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case 'h', 'd':
			if _, err := strconv.Atoi(f[1:]); err != nil {
				continue // a count field: read with its slot
			}
			stamp, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				continue
			}
			bs, width := st.Hourly, hourMS
			if f[0] == 'd' {
				bs, width = st.Daily, dayMS
			}
			for _, kind := range []byte{statSignIn, statFailed, statRevoke} {
				n, _ := strconv.ParseInt(h[f+string(kind)], 10, 64)
				addTo(bs, width, stamp, kind, n)
			}
		case 'r':
			if f == "rn" {
				continue
			}
			if e, ok := decodeEvent(v); ok {
				st.Recent = append(st.Recent, e)
			}
		}
	}
}

// walkLive adds the live sessions to st's breakdowns: a SCAN of the
// session keys on every master, each page read in one pipeline.
func (r *Redis) walkLive(ctx context.Context, st *Stats, now time.Time, p Policy) error {
	var mu sync.Mutex
	full := false
	scan := func(ctx context.Context, c redis.UniversalClient) error {
		iter := c.Scan(ctx, 0, r.prefix+"{*}:s:*", 1000).Iterator()
		var page []string
		flush := func() error {
			pipe := c.Pipeline()
			cmds := make([]*redis.MapStringStringCmd, len(page))
			for i, k := range page {
				cmds[i] = pipe.HGetAll(ctx, k)
			}
			if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for i, k := range page {
				id := k[strings.LastIndex(k, ":s:")+3:]
				s, err := decodeMap(id, cmds[i].Val())
				if err != nil || s.UserID == "" || full {
					continue
				}
				full = !st.countLive(s, now, p)
			}
			page = page[:0]
			return nil
		}
		for iter.Next(ctx) {
			page = append(page, iter.Val())
			if len(page) == 1000 {
				if err := flush(); err != nil {
					return err
				}
				mu.Lock()
				stop := full
				mu.Unlock()
				if stop {
					return nil
				}
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		return flush()
	}
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	}
	return scan(ctx, r.client)
}
