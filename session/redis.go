package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// Redis keeps sessions in Redis (standalone, Sentinel or Cluster through
// one redis.UniversalClient). Several gateways sharing it see one truth.
type Redis struct {
	ownsClient bool // made by DialRedis: Close closes it
	client     redis.UniversalClient
	// hot runs the per-request validation. It is go-redis's automatic
	// pipeliner: the validations of concurrent requests go out as one
	// write and come back as one read, which saves both this process and
	// Redis a pair of system calls per request (make bench shows the
	// difference). Everything else uses the client directly. The client
	// owns the pipeliner and releases it when it is closed. Nil on a
	// cluster: see NewRedis.
	hot    *redis.AutoPipeliner
	prefix string
	now    func() time.Time
	// owners: user tag → the user whose sessions carry it. A tag is 48
	// bits of a digest, so two users may share one: the script then names
	// the right owner and the entry is replaced.
	owners memo[string]
	recent memo[seen] // session id → what its last validation here saw
	// targets: notification target → when this process last listed it
	// among the outbox's channels (redis_outbox.go).
	targets sync.Map
}

// NewRedis returns a store on client with keys under prefix. The client is
// the caller's: Close does not close it (DialRedis makes a store that owns
// its client). now is the clock for reads (time.Now when nil).
func NewRedis(client redis.UniversalClient, prefix string, now func() time.Time) *Redis {
	if now == nil {
		now = time.Now
	}
	r := &Redis{client: client, prefix: prefix, now: now}
	// Only on one master (standalone or Sentinel): on a cluster the
	// pipeliner's single ordered stream would make every node's users wait
	// on, and fail with, a node that is down. The deferred face, because
	// the blocking one waits for its batch whatever the caller's deadline
	// (see runHot).
	if c, ok := client.(*redis.Client); ok {
		if ap, err := c.AsyncAutoPipelineWithOptions(&redis.AutoPipelineOptions{
			MaxBatchSize: 300, MaxBatchBytes: 128 << 10, MaxConcurrentBatches: 1,
			MaxQueuedCommands: maxQueuedValidations,
		}); err == nil {
			r.hot = ap
		}
	}
	return r
}

// maxQueuedValidations bounds the validations waiting for a Redis that
// does not answer: past it, a check fails at once (503) rather than
// queueing behind the others.
const maxQueuedValidations = 10000

// runHot runs script on the pipeliner, waiting no longer than ctx allows.
// The pipeliner sends one batch at a time and waits for each without any
// caller's deadline, for up to read_timeout per try, so with a frozen
// Redis a check would otherwise wait for every batch queued before its
// own. A validation given up on still runs if Redis answers, in order
// with the ones after it; it writes nothing they would not.
func (r *Redis) runHot(ctx context.Context, script *redis.Script, keys []string, args ...any) ([]any, error) {
	if r.hot == nil {
		return script.Run(ctx, r.client, keys, args...).Slice()
	}
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	cmdArgs = append(cmdArgs, "evalsha", script.Hash(), len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmd := redis.NewCmd(ctx, append(cmdArgs, args...)...)
	err := r.hot.Submit(ctx, cmd).WaitContext(ctx)
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		return script.Eval(ctx, r.client, keys, args...).Slice()
	}
	if err != nil {
		return nil, err
	}
	return cmd.Slice()
}

// RevocationChannel is the pub/sub channel on which the Redis store
// announces ended sessions (comma-separated ids), for in-process caches.
func RevocationChannel(prefix string) string { return prefix + "revoked" }

// ChangedMark marks an id on the revocation channel whose session changed
// but goes on (a step-up): caches drop it, its connections stay open. A
// gateway that does not know the mark reads an id that names nothing.
const ChangedMark = "~"

// announce tells the gateways' caches that sessions ended. It is best
// effort: a cache that misses it forgets the session within its TTL.
func (r *Redis) announce(ctx context.Context, ids ...string) {
	if len(ids) > 0 {
		_ = r.client.Publish(ctx, RevocationChannel(r.prefix), strings.Join(ids, ",")).Err()
	}
}

func idsOf(ss []*Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

func (r *Redis) tagPrefix(tag string) string  { return r.prefix + "{" + tag + "}:" }
func (r *Redis) sessionKey(id string) string  { return r.tagPrefix(TagOfID(id)) + "s:" + id }
func (r *Redis) userKey(user string) string   { return r.tagPrefix(LegacyUserTag(user)) + "u:" + user }
func (r *Redis) eventsKey(user string) string { return r.tagPrefix(LegacyUserTag(user)) + "e:" + user }

// NewCredential implements Store. Redis ids keep the unkeyed tag
// (LegacyUserTag): the tag names the cluster slot of the user's keys, so
// a keyed one needs its key in Redis, under every key a user's operations
// reach; a key lost (allkeys eviction, a stray DEL) would move users to
// new tags and hide their sessions from "sign out everywhere".
func (r *Redis) NewCredential(_ context.Context, userID string) (string, string, [32]byte, error) {
	return NewCredentialTagged(LegacyUserTag(userID))
}

// The per-IP index is sharded into 16^ipBucketHex (4,096) sorted sets
// rather than a key per address: a key costs Redis about a hundred bytes
// before its contents, and most addresses have one session. A member is
// the address's digest (ipDigestHex hex digits) followed by the session
// id, so it stays under zset-max-listpack-value even for IPv6; its score is
// when the session was last seen there.
const (
	ipBucketHex = 3
	ipDigestHex = 8
)

// ipEntry returns the bucket key for ip and the prefix of its members.
func (r *Redis) ipEntry(ip string) (key, member string) {
	sum := sha256.Sum256([]byte(ip))
	h := hex.EncodeToString(sum[:])
	return r.prefix + "ip:{" + h[:ipBucketHex] + "}", h[ipBucketHex : ipBucketHex+ipDigestHex]
}

// indexIP records that session id was seen from ip at at, and drops the
// bucket's entries too old to matter. The index lives in the bucket's own
// slot, so it is a second command after the script that changed the
// session; an entry whose session has moved on is dropped when read.
func (r *Redis) indexIP(ctx context.Context, ip, id string, at time.Time, p Policy) error {
	if ip == "" {
		return nil
	}
	key, digest := r.ipEntry(ip)
	keep := p.Lifetime + p.Retention
	pipe := r.client.Pipeline()
	pipe.ZAdd(ctx, key, redis.Z{Score: float64(ms(at)), Member: digest + id})
	pipe.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(ms(at.Add(-keep)), 10))
	pipe.PExpire(ctx, key, keep)
	_, err := pipe.Exec(ctx)
	return err
}

// ByIP implements Store: the bucket newest sighting first, a chunk at a
// time, its sessions read in one pipeline per chunk. A position is an
// entry of the bucket (its score and member). An entry whose session has
// gone or moved on is dropped; one whose session is not there yet is left
// to a sign-in in flight (the index is written after the session).
func (r *Redis) ByIP(ctx context.Context, ip string, now time.Time, p Policy, after string, limit int) ([]*Session, string, error) {
	key, digest := r.ipEntry(ip)
	type entry struct {
		member string
		score  float64
	}
	var pos *entry
	if after != "" {
		sc, mbr, ok := strings.Cut(after, ":")
		f, err := strconv.ParseFloat(sc, 64)
		if !ok || err != nil || !strings.HasPrefix(mbr, digest) || !ValidID(mbr[len(digest):]) {
			return nil, "", ErrBadCursor
		}
		pos = &entry{mbr, f}
	}
	chunk := int64(min(max(limit+1, 16), ipChunk))
	var out []*Session
	var outPos []entry
	var stale []any
	for {
		// Entries after pos: first the rest of its score (ties come in
		// reverse member order), then the lower scores.
		var zs []redis.Z
		var err error
		switch {
		case pos == nil:
			zs, err = r.client.ZRevRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{Max: "+inf", Min: "-inf", Count: chunk}).Result()
		default:
			sc := strconv.FormatFloat(pos.score, 'f', -1, 64)
			var ties []redis.Z
			ties, err = r.client.ZRevRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{Max: sc, Min: sc}).Result()
			for _, z := range ties {
				if m, _ := z.Member.(string); m < pos.member {
					zs = append(zs, z)
				}
			}
			if err == nil && len(zs) == 0 {
				zs, err = r.client.ZRevRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{Max: "(" + sc, Min: "-inf", Count: chunk}).Result()
			}
		}
		if err != nil {
			return nil, "", fmt.Errorf("listing sessions by IP: %w", err)
		}
		if len(zs) == 0 {
			break
		}
		var mine []entry
		for _, z := range zs {
			m, _ := z.Member.(string)
			if strings.HasPrefix(m, digest) { // else another address in the bucket
				mine = append(mine, entry{m, z.Score})
			}
		}
		last := zs[len(zs)-1]
		lastMember, _ := last.Member.(string)
		pos = &entry{lastMember, last.Score}
		// Read no more sessions than the page still needs (a tie of many
		// entries at one millisecond comes back whole); the next round
		// starts after the last one read.
		if need := limit + 1 - len(out); len(mine) > need {
			mine = mine[:need]
			pos = &mine[need-1]
		}
		if len(mine) == 0 {
			continue
		}
		pipe := r.client.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(mine))
		for i, e := range mine {
			cmds[i] = pipe.HGetAll(ctx, r.sessionKey(e.member[len(digest):]))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, "", fmt.Errorf("listing sessions by IP: %w", err)
		}
		for i, e := range mine {
			id := e.member[len(digest):]
			s, err := decodeMap(id, cmds[i].Val())
			if errors.Is(err, ErrNotFound) {
				if e.score < float64(ms(now.Add(-time.Minute))) {
					stale = append(stale, e.member)
				}
				continue
			}
			if err != nil {
				return nil, "", err
			}
			if s.IP != ip {
				stale = append(stale, e.member)
				continue
			}
			if s.Active() && !p.Expired(s, now) {
				out = append(out, s)
				outPos = append(outPos, e)
				if len(out) > limit {
					break
				}
			}
		}
		if len(out) > limit {
			break
		}
	}
	if len(stale) > 0 {
		_ = r.client.ZRem(ctx, key, stale...).Err()
	}
	if len(out) <= limit {
		return out, "", nil
	}
	e := outPos[limit-1]
	return out[:limit], strconv.FormatFloat(e.score, 'f', -1, 64) + ":" + e.member, nil
}

// ipChunk is the most entries of an IP bucket ByIP reads at a time (a
// page and one more, when fewer).
const ipChunk = 256

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

func policyArgs(p Policy) (lifetime, idle, retention int64) {
	return p.Lifetime.Milliseconds(), p.IdleTimeout.Milliseconds(), p.Retention.Milliseconds()
}

// chunkLen keeps every value of a session hash under Redis's
// hash-max-listpack-value (64 bytes by default): one longer value turns
// the whole hash into a hashtable, several times its size.
const chunkLen = 60

// fields lists a session as hash field/value pairs; empty values are left
// out to keep the hash small. Long text the scripts never read (user
// agent, email, name, roles) is stored in chunks: "ua", "ua~1", "ua~2"…
//
// The plain text fields are in textFields, which decode reads too.
func fields(s *Session) []any {
	out := []any{"u", s.UserID, "th", string(s.TokenHash[:]),
		"ca", ms(s.CreatedAt), "la", ms(s.LastActiveAt), "ip", s.IP}
	for _, f := range textFields {
		if f.chunked {
			out = appendChunks(out, f.key, *f.of(s))
		}
	}
	for _, f := range textFields {
		if v := *f.of(s); !f.chunked && v != "" {
			out = append(out, f.key, v)
		}
	}
	// The login IP, country and city are kept only once they differ from
	// the current ones (the scripts write them before the first change):
	// most sessions never move, and the fields would cost a size class.
	if s.LoginIP != s.IP {
		out = append(out, "lip", s.LoginIP)
	}
	if s.LoginCountry != s.Country {
		out = append(out, "lco", s.LoginCountry)
	}
	if s.HasCoord {
		out = append(out, "lt", formatCoord(s.Lat), "ln", formatCoord(s.Lon))
	}
	// Most sessions are authenticated when created: kept only once a
	// step-up moves it.
	if !s.AuthenticatedAt.IsZero() && !s.AuthenticatedAt.Equal(s.CreatedAt) {
		out = append(out, "aa", ms(s.AuthenticatedAt))
	}
	if s.TokenLifetime > 0 {
		out = append(out, "tx", strconv.FormatInt(s.TokenLifetime.Milliseconds(), 10))
	}
	if !s.CheckedAt.IsZero() {
		out = append(out, "ck", ms(s.CheckedAt))
	}
	return out
}

// appendChunks appends the field/value pairs of a chunked text field:
// key, key~1, key~2… with at most chunkLen bytes each.
func appendChunks(out []any, key, v string) []any {
	for i := 0; v != ""; i++ {
		n := min(chunkLen, len(v))
		for n < len(v) && n > 0 && !utf8.RuneStart(v[n]) {
			n-- // whole characters in each chunk
		}
		k := key
		if i > 0 {
			k += "~" + strconv.Itoa(i)
		}
		out = append(out, k, v[:n])
		v = v[n:]
	}
	return out
}

// textFields are the session's text fields kept under a key of their own,
// written when not empty: one table for fields and decode. The chunked
// ones can outgrow a listpack entry and are cut in chunks (key, key~1…).
var textFields = [...]struct {
	key     string
	of      func(*Session) *string
	chunked bool
}{
	{"em", func(s *Session) *string { return &s.Email }, true},
	{"nm", func(s *Session) *string { return &s.Name }, true},
	{"ro", func(s *Session) *string { return &s.Roles }, true},
	{"ua", func(s *Session) *string { return &s.UserAgent }, true},
	{"dn", func(s *Session) *string { return &s.Device }, false},
	{"dt", func(s *Session) *string { return &s.DeviceType }, false},
	{"br", func(s *Session) *string { return &s.Browser }, false},
	{"os", func(s *Session) *string { return &s.OS }, false},
	{"co", func(s *Session) *string { return &s.Country }, false},
	{"ci", func(s *Session) *string { return &s.City }, false},
	{"di", func(s *Session) *string { return &s.DeviceID }, false},
	{"rk", func(s *Session) *string { return &s.Risk }, false},
	{"kd", func(s *Session) *string { return &s.Kind }, false},
	{"tl", func(s *Session) *string { return &s.Label }, false},
	{"pa", func(s *Session) *string { return &s.Parent }, false},
	{"am", func(s *Session) *string { return &s.AuthMethod }, false},
	{"tk", func(s *Session) *string { return &s.SealedTokens }, true},
	{"pv", func(s *Session) *string { return &s.Provider }, false},
	{"sub", func(s *Session) *string { return &s.Subject }, false},
	{"sid", func(s *Session) *string { return &s.ProviderSID }, false},
	{"sip", func(s *Session) *string { return &s.StepUpIP }, false},
	{"sco", func(s *Session) *string { return &s.StepUpCountry }, false},
	{"st", func(s *Session) *string { return &s.Site }, false},
}

// textField finds key in textFields.
var textField = func() map[string]func(*Session) *string {
	m := make(map[string]func(*Session) *string, len(textFields))
	for _, f := range textFields {
		m[f.key] = f.of
	}
	return m
}()

// decode builds a session from a flat field/value list as a script
// returns HGETALL's answer.
func decode(id string, flat []any) (*Session, error) {
	if len(flat)%2 != 0 {
		return nil, fmt.Errorf("decoding session %s: odd field list", id)
	}
	return decodeFields(id, func(yield func(k, v string) bool) {
		for i := 0; i < len(flat); i += 2 {
			k, _ := flat[i].(string)
			v, _ := flat[i+1].(string)
			if !yield(k, v) {
				return
			}
		}
	})
}

// decodeFields builds a session from its hash's fields, in any order.
func decodeFields(id string, fields iter.Seq2[string, string]) (*Session, error) {
	s := &Session{ID: id}
	var hasLoginIP, hasLoginCountry bool
	var chunks map[string]string // "ua~1" → value, joined after the loop
	for k, v := range fields {
		if strings.Contains(k, "~") {
			if chunks == nil {
				chunks = map[string]string{}
			}
			chunks[k] = v
			continue
		}
		if of, ok := textField[k]; ok {
			*of(s) = v
			continue
		}
		switch k {
		case "u":
			s.UserID = v
		case "th":
			copy(s.TokenHash[:], v)
		case "ip":
			s.IP = v
		case "lip":
			s.LoginIP, hasLoginIP = v, true
		case "lco":
			s.LoginCountry, hasLoginCountry = v, true
		case "lt":
			s.Lat, s.HasCoord = parseCoord(v), true
		case "ln":
			s.Lon = parseCoord(v)
		case "aa":
			s.AuthenticatedAt = fromMS(v)
		case "tx":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				s.TokenLifetime = time.Duration(n) * time.Millisecond
			}
		case "ck":
			s.CheckedAt = fromMS(v)
		case "ca":
			s.CreatedAt = fromMS(v)
		case "la":
			s.LastActiveAt = fromMS(v)
		case "ea":
			s.EndedAt = fromMS(v)
		case "er":
			s.EndReason = v
		}
	}
	if !hasLoginIP {
		s.LoginIP = s.IP
	}
	if !hasLoginCountry {
		s.LoginCountry = s.Country
	}

	for _, f := range textFields {
		for i := 1; f.chunked; i++ {
			part, ok := chunks[f.key+"~"+strconv.Itoa(i)]
			if !ok {
				break
			}
			*f.of(s) += part
		}
	}
	if s.UserID == "" {
		return nil, fmt.Errorf("decoding session %s: no user", id)
	}
	return s, nil
}

func formatCoord(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func parseCoord(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// decodePairs decodes the {id, flat, id, flat…} lists the scripts return.
func decodePairs(xs []any) ([]*Session, error) {
	var out []*Session
	err := eachPair(xs, func(s *Session, _ []any) { out = append(out, s) })
	return out, err
}

// eachPair decodes the sessions of an {id, flat…} list and hands each to
// f with its raw fields.
func eachPair(xs []any, f func(s *Session, flat []any)) error {
	for i := 0; i+1 < len(xs); i += 2 {
		id, _ := xs[i].(string)
		flat, _ := xs[i+1].([]any)
		s, err := decode(id, flat)
		if err != nil {
			return err
		}
		f(s, flat)
	}
	return nil
}

// Create implements Store.
func (r *Redis) Create(ctx context.Context, s *Session, p Policy, lim Limit) ([]*Session, error) {
	lifetime, idle, retention := policyArgs(p)
	mode := lim.Mode
	if mode == "" {
		mode = LimitOldest
	}
	args := append([]any{r.tagPrefix(LegacyUserTag(s.UserID)) + "s:", s.ID, ms(s.CreatedAt),
		lifetime, idle, retention, lim.Max, string(mode), lim.Tokens}, fields(s)...)
	res, err := r.runOverUser(ctx, createScript, s.UserID,
		[]string{r.sessionKey(s.ID), r.userKey(s.UserID), r.eventsKey(s.UserID)}, args...)
	if err != nil {
		return nil, fmt.Errorf("creating session: %w", err)
	}
	if len(res) == 0 {
		return nil, errors.New("creating session: empty reply")
	}
	switch n, _ := res[0].(int64); n {
	case -1:
		return nil, ErrLimitReached
	case -2:
		return nil, ErrTooManyTokens
	case -3:
		return nil, ErrNotFound // the token's parent
	}
	if len(res) < 4 {
		return nil, errors.New("creating session: short reply")
	}
	if at, _ := res[1].(int64); at != ms(s.CreatedAt) {
		s.CreatedAt = time.UnixMilli(at).UTC()
		s.LastActiveAt = s.CreatedAt
	}
	s.Risk, _ = res[2].(string)
	others, _ := res[3].(int64)
	s.OthersActive = int(others)
	if err := r.indexIP(ctx, s.IP, s.ID, s.CreatedAt, p); err != nil {
		return nil, fmt.Errorf("indexing the session's IP: %w", err)
	}
	ended, err := decodePairs(res[4:])
	r.announce(ctx, idsOf(ended)...)
	return ended, err
}

// Discard implements Store. The tombstone it leaves lives as long as the
// session could have: a Create still queued behind a stalled Redis finds
// it whenever it runs.
func (r *Redis) Discard(ctx context.Context, s *Session, p Policy) ([]*Session, error) {
	res, err := r.runOverUser(ctx, discardScript, s.UserID,
		[]string{r.sessionKey(s.ID), r.userKey(s.UserID)},
		r.tagPrefix(LegacyUserTag(s.UserID))+"s:", s.ID, max(p.Lifetime, time.Minute).Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("discarding session: %w", err)
	}
	ended, err := decodePairs(res)
	r.announce(ctx, idsOf(ended)...)
	return ended, err
}

// Sight implements Store.
func (r *Redis) Sight(ctx context.Context, id string, sg Sighting, at time.Time, p Policy) (*Session, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	lifetime, idle, retention := policyArgs(p)
	lat, lon := "", ""
	if sg.HasCoord {
		lat, lon = formatCoord(sg.Lat), formatCoord(sg.Lon)
	}
	user, err := r.ownerOf(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("recording sighting: %w", err)
	}
	tp := r.tagPrefix(TagOfID(id))
	res, err := sightScript.Run(ctx, r.client, []string{r.sessionKey(id), r.userKey(user), r.eventsKey(user), r.statsKey(r.eventsKey(user))},
		tp+"u:", tp+"e:", id, ms(at), lifetime, idle, retention, sg.IP, sg.Country, sg.City, lat, lon).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("recording sighting: %w", err)
	}
	if err := r.indexIP(ctx, sg.IP, id, at, p); err != nil {
		return nil, fmt.Errorf("indexing the session's IP: %w", err)
	}
	return decode(id, res)
}

// Users implements Store: a SCAN of the user indexes, on every master of
// a cluster.
func (r *Redis) Users(ctx context.Context) ([]string, error) {
	var mu sync.Mutex
	seen := map[string]bool{}
	scan := func(ctx context.Context, c redis.UniversalClient) error {
		iter := c.Scan(ctx, 0, r.prefix+"{*}:u:*", 1000).Iterator()
		for iter.Next(ctx) {
			key := iter.Val()
			// <prefix>{<tag>}:u:<user>
			if i := strings.Index(key[len(r.prefix):], "}:u:"); i >= 0 {
				mu.Lock()
				seen[key[len(r.prefix)+i+len("}:u:"):]] = true
				mu.Unlock()
			}
		}
		return iter.Err()
	}
	var err error
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, r.client)
	}
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	out := make([]string, 0, len(seen))
	for u := range seen {
		out = append(out, u)
	}
	slices.Sort(out)
	return out, nil
}

// Hit implements Store. Counters are keyed by what they count (an IP, a
// user) under their own hash tag; they expire with their window.
func (r *Redis) Hit(ctx context.Context, key string, window time.Duration, _ time.Time) (int64, time.Duration, error) {
	res, err := hitScript.Run(ctx, r.client, []string{r.prefix + "rl:{" + key + "}"}, window.Milliseconds()).Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("counting: %w", err)
	}
	if len(res) != 2 {
		return 0, 0, errors.New("counting: short reply")
	}
	n, _ := res[0].(int64)
	ttl, _ := res[1].(int64)
	return n, time.Duration(ttl) * time.Millisecond, nil
}

// Refund implements Store; the counter keeps its expiry.
func (r *Redis) Refund(ctx context.Context, key string, _ time.Time) error {
	if err := refundScript.Run(ctx, r.client, []string{r.prefix + "rl:{" + key + "}"}).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("refunding: %w", err)
	}
	return nil
}

// stashKey is a one-use record's key, under its own hash tag.
func (r *Redis) stashKey(key string) string { return r.prefix + "once:{" + key + "}" }

// Stash implements Store. The record expires with its TTL in Redis.
func (r *Redis) Stash(ctx context.Context, key string, value []byte, ttl time.Duration, _ time.Time) error {
	if err := stashScript.Run(ctx, r.client, []string{r.stashKey(key)}, value, max(ttl.Milliseconds(), 1)).Err(); err != nil {
		return fmt.Errorf("stashing: %w", err)
	}
	return nil
}

// Take implements Store: read and delete in one script, so that a record
// is used once even when two gateways race for it.
func (r *Redis) Take(ctx context.Context, key string, _ time.Time) ([]byte, error) {
	v, err := takeScript.Run(ctx, r.client, []string{r.stashKey(key)}).Text()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("taking: %w", err)
	}
	return []byte(v), nil
}

// RedisACL is the ACL rule list (after ACL SETUSER <name>) of the Redis
// user the store needs, with the default key_prefix sa: and %s for its
// password: its keys only, no pub/sub channels but its own (revocations
// for the caches), and only the commands it sends or its scripts run.
// SECURITY.md prints it; the conformance suite runs as this user.
const RedisACL = "on >%s resetkeys ~sa:* resetchannels &sa:* -@all " +
	"+hello +auth +select +ping +publish +subscribe " +
	"+evalsha +eval +hgetall +lrange " +
	"+hget +hset +hdel +zadd +zrem +zrange +zrevrange +zscore +pexpire +pexpireat +pttl +lpush +ltrim +incr +decr " +
	"+xadd +xreadgroup +xautoclaim +xgroup|create +xack +xdel +zrangebyscore +zremrangebyscore +info +del +exists +xlen +zcard +zrevrangebyscore"

// linkKey is a link set's key, under its own hash tag.
func (r *Redis) linkKey(key string) string { return r.prefix + "link:{" + key + "}" }

// Link implements Store.
func (r *Redis) Link(ctx context.Context, key, member string, ttl time.Duration, now time.Time) error {
	if err := linkScript.Run(ctx, r.client, []string{r.linkKey(key)}, member, ms(now.Add(ttl)), ms(now), maxLinks).Err(); err != nil {
		return fmt.Errorf("linking: %w", err)
	}
	return nil
}

// Linked implements Store.
func (r *Redis) Linked(ctx context.Context, key string, now time.Time) ([]string, error) {
	out, err := r.client.ZRangeByScore(ctx, r.linkKey(key), &redis.ZRangeBy{Min: "(" + strconv.FormatInt(ms(now), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("reading links: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

// Record implements Store.
func (r *Redis) Record(ctx context.Context, e Event, p Policy) error {
	key := r.prefix + "events"
	if e.UserID != "" {
		key = r.eventsKey(e.UserID)
	}
	args := append([]any{ms(e.At), p.Retention.Milliseconds(), e.UserID}, eventValues(e)...)
	if err := recordScript.Run(ctx, r.client, []string{key, r.statsKey(key)}, args...).Err(); err != nil {
		return fmt.Errorf("recording event: %w", err)
	}
	return nil
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, id string) (*Session, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	m, err := r.client.HGetAll(ctx, r.sessionKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("reading session: %w", err)
	}
	return decodeMap(id, m)
}

// decodeMap decodes a session hash as HGETALL gives it to Go.
func decodeMap(id string, m map[string]string) (*Session, error) {
	if m["u"] == "" { // none, or a discarded sign-in's tombstone
		return nil, ErrNotFound
	}
	return decodeFields(id, maps.All(m))
}

// ownerOf reads which user session id belongs to, so that a script can
// declare that user's keys (see the key layout). A session that is gone
// gives ErrNotFound.
func (r *Redis) ownerOf(ctx context.Context, id string) (string, error) {
	user, err := r.client.HGet(ctx, r.sessionKey(id), "u").Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	return user, err
}

// maxStaleRetries bounds the reads of a user's index that one change of
// the user's sessions may take when others change them at the same time.
const maxStaleRetries = 50

// runOverUser runs a script that walks the user's sessions, with every
// session key declared after keys; when a sign-in came between the read
// of the index and the script (STALEKEYS), it reads the index again.
func (r *Redis) runOverUser(ctx context.Context, script *redis.Script, userID string, keys []string, args ...any) ([]any, error) {
	skp := r.tagPrefix(LegacyUserTag(userID)) + "s:"
	for attempt := 1; ; attempt++ {
		members, err := r.client.ZRange(ctx, r.userKey(userID), 0, -1).Result()
		if err != nil {
			return nil, err
		}
		all := slices.Clip(keys)
		for _, m := range members {
			if len(m) < 2 || m[1] != ':' { // not a history member
				all = append(all, skp+m)
			}
		}
		if countsStats(script) {
			all = append(all, r.statsKey(r.userKey(userID)))
		}
		res, err := script.Run(ctx, r.client, all, args...).Slice()
		if err == nil || !strings.HasPrefix(err.Error(), "STALEKEYS") || attempt == maxStaleRetries {
			return res, err
		}
		// Several sign-ins of one user at once: step aside a little, at
		// random, so that one of them gets through each round.
		if attempt > 2 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(rand.Int64N(int64(attempt) * int64(time.Millisecond)))):
			}
		}
	}
}

// List implements Store.
func (r *Redis) List(ctx context.Context, userID string, now time.Time, p Policy) ([]*Session, error) {
	res, err := r.listRaw(ctx, userID, now, &p)
	if err != nil {
		return nil, fmt.Errorf("listing sessions: %w", err)
	}
	out, err := decodePairs(res)
	if err != nil {
		return nil, err
	}
	SortByActivity(out)
	return out, nil
}

// listRaw runs the list script over the user's sessions: {id, flat…}.
// With a policy, it drops the ended sessions past the cap.
func (r *Redis) listRaw(ctx context.Context, userID string, now time.Time, p *Policy) ([]any, error) {
	args := []any{r.tagPrefix(LegacyUserTag(userID)) + "s:"}
	if p != nil {
		lifetime, idle, retention := policyArgs(*p)
		args = append(args, ms(now), lifetime, idle, retention)
	}
	return r.runOverUser(ctx, listScript, userID, []string{r.userKey(userID), r.eventsKey(userID)}, args...)
}

// End implements Store.
func (r *Redis) End(ctx context.Context, id string, at time.Time, reason, actor string, p Policy) (*Session, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	lifetime, idle, retention := policyArgs(p)
	user, err := r.ownerOf(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("ending session: %w", err)
	}
	res, err := endScript.Run(ctx, r.client, []string{r.sessionKey(id), r.eventsKey(user), r.statsKey(r.eventsKey(user))},
		r.tagPrefix(TagOfID(id))+"e:", id, ms(at), reason, actor, lifetime, idle, retention).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("ending session: %w", err)
	}
	r.announce(ctx, id)
	return decode(id, res)
}

// StepUp implements Store.
func (r *Redis) StepUp(ctx context.Context, id string, pr Proof, p Policy) (*Session, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	lifetime, idle, retention := policyArgs(p)
	user, err := r.ownerOf(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("stepping up: %w", err)
	}
	res, err := stepUpScript.Run(ctx, r.client, []string{r.sessionKey(id), r.eventsKey(user)},
		r.tagPrefix(TagOfID(id))+"e:", id, ms(pr.At), lifetime, idle, retention, pr.Method, pr.ProviderSID).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("stepping up: %w", err)
	}
	// Best effort, as announce: a cache that misses it reads the session
	// again within its TTL.
	_ = r.client.Publish(ctx, RevocationChannel(r.prefix), ChangedMark+id).Err()
	return decode(id, res)
}

// MarkChecked implements Store: one script on the session's key.
func (r *Redis) MarkChecked(ctx context.Context, id string, was, at time.Time, sealed string) (bool, error) {
	if !ValidID(id) {
		return false, ErrNotFound
	}
	wasMS := "0" // CheckedAt zero: no ck field (see fields)
	if !was.IsZero() {
		wasMS = strconv.FormatInt(ms(was), 10)
	}
	args := appendChunks([]any{wasMS, ms(at)}, "tk", sealed)
	n, err := markCheckedScript.Run(ctx, r.client, []string{r.sessionKey(id)}, args...).Int()
	if err != nil {
		return false, fmt.Errorf("recording a provider check: %w", err)
	}
	if n < 0 {
		return false, ErrNotFound
	}
	return n == 1, nil
}

// SetRoles implements Store: one script on the session's key.
func (r *Redis) SetRoles(ctx context.Context, id, roles string) (*Session, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	res, err := setRolesScript.Run(ctx, r.client, []string{r.sessionKey(id)}, appendChunks(nil, "ro", roles)...).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("replacing roles: %w", err)
	}
	// As StepUp: other gateways' caches read the session again.
	_ = r.client.Publish(ctx, RevocationChannel(r.prefix), ChangedMark+id).Err()
	return decode(id, res)
}

// EndUser implements Store.
func (r *Redis) EndUser(ctx context.Context, userID, exceptID string, at time.Time, reason, actor string, p Policy) ([]*Session, error) {
	lifetime, idle, retention := policyArgs(p)
	res, err := r.runOverUser(ctx, endUserScript, userID, []string{r.userKey(userID), r.eventsKey(userID)},
		r.tagPrefix(LegacyUserTag(userID))+"s:", exceptID, ms(at), reason, actor, lifetime, idle, retention)
	if err != nil {
		return nil, fmt.Errorf("ending sessions: %w", err)
	}
	out, err := decodePairs(res)
	if err != nil {
		return nil, err
	}
	r.announce(ctx, idsOf(out)...)
	SortByActivity(out)
	return out, nil
}

// EndWithTokens implements Store: one script over the owner's sessions,
// which share its hash tag with the tokens it made.
func (r *Redis) EndWithTokens(ctx context.Context, id string, at time.Time, reason, actor string, p Policy) ([]*Session, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	user, err := r.ownerOf(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("ending session: %w", err)
	}
	lifetime, idle, retention := policyArgs(p)
	tp := r.tagPrefix(TagOfID(id))
	res, err := r.runOverUser(ctx, endWithTokensScript, user, []string{r.sessionKey(id), r.userKey(user), r.eventsKey(user)},
		tp+"s:", id, ms(at), reason, actor, lifetime, idle, retention, tp+"e:")
	if err != nil {
		return nil, fmt.Errorf("ending session: %w", err)
	}
	out, err := decodePairs(res)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	r.announce(ctx, idsOf(out)...)
	first := 0
	if out[0].ID == id {
		first = 1
	}
	SortByActivity(out[first:])
	return out, nil
}

// Events implements Store. Sign-ins are not in the user's event list:
// each session is its own record of its sign-in, and a session is kept at
// least retention after it was created, as long as its login event would
// be. So a user with one session and nothing else to report costs no list
// at all (make bench counts the bytes).
func (r *Redis) Events(ctx context.Context, userID string, since time.Time, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = maxEventsPerUser
	}
	// The whole list (it is capped): the sign-ins of sessions dropped by
	// the cap on ended ones were pushed when dropped, out of time order.
	items, err := r.client.LRange(ctx, r.eventsKey(userID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("reading events: %w", err)
	}
	logged := make([]Event, 0, len(items))
	for _, it := range items {
		e, ok := decodeEvent(it)
		e.UserID = userID
		if ok && !e.At.Before(since) {
			logged = append(logged, e)
		}
	}
	slices.SortStableFunc(logged, newestFirst)
	res, err := r.listRaw(ctx, userID, time.Time{}, nil)
	if err != nil {
		return nil, fmt.Errorf("reading events: %w", err)
	}
	var logins []Event
	err = eachPair(res, func(s *Session, flat []any) {
		if s.CreatedAt.Before(since) {
			return
		}
		e := LoginEvent(s)
		e.IP, e.Country, e.City = s.LoginIP, s.LoginCountry, s.City
		if city, ok := fieldOf(flat, "lci"); ok { // the city at sign-in, once it changed
			e.City = city
		}
		logins = append(logins, e)
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(logins, newestFirst)
	// Merge, newest first; at the same instant the sign-in came first, so
	// it is listed after what it caused (its risk events).
	out := make([]Event, 0, min(limit, len(logged)+len(logins)))
	for len(out) < limit && (len(logged) > 0 || len(logins) > 0) {
		if len(logins) == 0 || (len(logged) > 0 && !logged[0].At.Before(logins[0].At)) {
			out, logged = append(out, logged[0]), logged[1:]
		} else {
			out, logins = append(out, logins[0]), logins[1:]
		}
	}
	return out, nil
}

// newestFirst orders events newest first; at the same instant a sign-in
// comes after what it caused (its risk events).
func newestFirst(a, b Event) int {
	if c := b.At.Compare(a.At); c != 0 {
		return c
	}
	switch {
	case a.Type == EventLogin && b.Type != EventLogin:
		return 1
	case b.Type == EventLogin && a.Type != EventLogin:
		return -1
	}
	return 0
}

// fieldOf finds a field in a flat field/value list.
func fieldOf(flat []any, name string) (string, bool) {
	for i := 0; i+1 < len(flat); i += 2 {
		if k, _ := flat[i].(string); k == name {
			v, _ := flat[i+1].(string)
			return v, true
		}
	}
	return "", false
}

// An event is kept as its values joined by a unit separator, in this
// order; the scripts write the same (event_fields). The user is left
// empty: the list is the user's own, and every byte is kept per event.
func eventValues(e Event) []any {
	return []any{e.Type, ms(e.At), "", e.SessionID, e.IP, e.Country, e.City,
		e.DeviceName, e.Browser, e.OS, e.DeviceID, e.Reason, e.Actor}
}

func decodeEvent(s string) (Event, bool) {
	v := strings.Split(s, "\x1f")
	if len(v) != 13 {
		return Event{}, false
	}
	return Event{Type: v[0], At: fromMS(v[1]), UserID: v[2], SessionID: v[3], IP: v[4], Country: v[5], City: v[6],
		DeviceName: v[7], Browser: v[8], OS: v[9], DeviceID: v[10], Reason: v[11], Actor: v[12]}, true
}

// Close implements Store; the client belongs to whoever made it.
func (r *Redis) Close() error {
	if r.ownsClient {
		return r.client.Close()
	}
	return nil
}

var _ Store = (*Redis)(nil)
