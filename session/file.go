package session

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// File is the durable embedded store (SPEC section 13): one bbolt file
// that keeps what the memory store keeps, for a single gateway instance.
// Sign-ins, revocations, events and notices are committed (fsync) before
// the call returns, in group commits (file_group.go); touches, sightings
// and counters are written behind, in the next group commit, so that
// validation reads bbolt's memory map and never waits for the disk. A
// crash loses at most the touches, sightings and counts of the commit in
// progress, never a sign-in or a revocation.
type File struct {
	db     *fileDB // the open file; compaction replaces it (file_db.go)
	path   string
	now    func() time.Time
	tagKey []byte // the key of user tags, kept in the file

	// Touches decided by Validate and not yet committed, by session id:
	// at most one per session. Validate looks here before the file, and
	// every write transaction commits them first.
	pmu     sync.Mutex
	pending map[string]fileTouch

	// The outbox's deliveries claimed and not yet acked or retried. Kept
	// in memory only: after a restart they are claimed again, so a notice
	// whose delivery a crash interrupted is still delivered.
	omu      sync.Mutex
	claimed  map[string]bool
	queued   wakers         // a send wakes a Claim waiting on its channel
	outboxN  map[string]int // entries in the outbox bucket, by target
	sweepPos map[string][]byte

	// Records that Validate decoded lately, with the bytes they came
	// from: a record whose bytes in the file are the same is not decoded
	// again, which is most of what validation would cost.
	dmu     sync.Mutex
	decoded map[string]*decodedRecord
	// gen counts the file's committed write transactions. A decoded
	// record read at the current gen is what the file holds now (this
	// process is the file's only writer: it holds the lock), so Validate
	// takes it without a read transaction, the rest of its cost.
	gen atomic.Uint64

	kick chan struct{}
	stop chan struct{}
	done sync.WaitGroup
	once sync.Once

	fileState // opening, checks, deadlines and the watch (file_*.go)
}

// Buckets of the file. Keys that start with a user id, an IP or a counter
// key carry its length first (see prefixKey), so that no id can be read
// as the start of another.
var (
	bSessions = []byte("sessions") // session id -> fileRecord (file_codec.go; JSON once)
	bUsers    = []byte("users")    // prefixKey(user)+session id -> nil
	bIPs      = []byte("ips")      // prefixKey(ip)+session id -> nil
	bEvents   = []byte("events")   // prefixKey(user)+seq -> fileEvent; user "" is the trail without a user
	bEvCount  = []byte("evcount")  // prefixKey(user) -> events kept (uint64)
	bHistory  = []byte("history")  // user -> fileHistory (file_codec.go; JSON once)
	bCounters = []byte("counters") // key -> count and window end
	bOutbox   = []byte("outbox")   // channelID(target)+seq -> fileDelivery (JSON)
	bStash    = []byte("stash")    // key -> until (ms, uint64) and value: one-use records
	bLinks    = []byte("links")    // key -> linkSet (JSON)
	// bAccounts and bAccountIndex: file_accounts.go.
	buckets = [][]byte{bSessions, bUsers, bIPs, bEvents, bEvCount, bHistory, bCounters, bOutbox, bStash, bLinks, bAccounts, bAccountIndex, bStats}

	// The store's own settings, outside buckets (which the sweep reads).
	bMeta   = []byte("meta")
	kTagKey = []byte("tag_key") // the key of user tags (UserTagFor)
)

// sweepBatch bounds the keys one sweep pass reads, so that a pass is
// short however large the file is (a variable for tests).
var sweepBatch = 2000

// FileOptions tune a file store; the zero value is what Caddy uses.
type FileOptions struct {
	// Sweep is how often expired records are dropped (0: never, for
	// tests that call Sweep).
	Sweep time.Duration
	// NoSync skips fsync on commit: for the memory store, whose file
	// dies with the process, and benchmarks that measure the file's size;
	// never for a store that must survive a crash.
	NoSync bool
	// WriteTimeout bounds a write (and a read that commits pending
	// touches first): past it the call returns ErrFileTimeout (0: no
	// bound). See file_deadline.go.
	WriteTimeout time.Duration
	// CheckEvery is how often the path is checked to still name the
	// open file (0: never). See file_watch.go.
	CheckEvery time.Duration
	// CheckBudget bounds the consistency check at open (0: a default
	// of 10s); a check that takes longer goes on in the background.
	CheckBudget time.Duration
	// Logger receives what the store has to say on its own (a damaged
	// page, a moved file, a world-readable file); nil: nothing.
	Logger *zap.Logger
}

// ErrFileLocked: another process has the store's file open.
var ErrFileLocked = errors.New("another process holds it")

// OpenFile opens (or creates) the store at path, with its directory 0700
// and the file 0600. now is its clock (time.Now when nil). If another
// process holds the file, it fails within a second with ErrFileLocked;
// a damaged file fails with ErrFileDamaged (see NewFile and Open).
func OpenFile(path string, now func() time.Time, o FileOptions) (*File, error) {
	f := NewFile(path, now, o)
	if err := f.Open(); err != nil {
		return nil, err
	}
	return f, nil
}

// Path is the store's file.
func (f *File) Path() string { return f.path }

// Size is the file's size in bytes.
func (f *File) Size() (int64, error) {
	if err := f.ready(); err != nil {
		return 0, err
	}
	var n int64
	err := f.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n, err
}

// Close commits the touches still pending and closes the file.
func (f *File) Close() error {
	var err error
	f.once.Do(func() {
		f.openMu.Lock() // no Open after this
		defer f.openMu.Unlock()
		close(f.stop)
		f.done.Wait()
		if f.db != nil {
			err = errors.Join(f.update(nil), f.db.Close(), f.releaseHeld())
		}
	})
	return err
}

type fileRecord struct {
	Session
	Hash    []byte    `json:"TokenHash"`
	PurgeAt time.Time `json:"PurgeAt"`
	EndedBy string    `json:"EndedBy,omitempty"` // the sign-in whose limit ended it
}

type decodedRecord struct {
	raw []byte
	rec fileRecord
	// Read from the file at gen (0: not known), listed or not then.
	gen    uint64
	listed bool
}

// maxDecoded bounds the records Validate keeps decoded.
const maxDecoded = 10_000

// recordFor decodes the session record v of id, or takes it from the
// records decoded lately when v is the same bytes.
func (f *File) recordFor(id string, v []byte) (*fileRecord, *decodedRecord) {
	if v == nil {
		return nil, nil
	}
	f.dmu.Lock()
	d := f.decoded[id]
	f.dmu.Unlock()
	if d != nil && bytes.Equal(d.raw, v) {
		r := d.rec
		return &r, d
	}
	r := decodeRecord(id, v)
	if r == nil {
		return nil, nil
	}
	d = &decodedRecord{raw: slices.Clone(v), rec: *r}
	f.dmu.Lock()
	if len(f.decoded) >= maxDecoded {
		for k := range f.decoded { // any one: Go's map order is random
			delete(f.decoded, k)
			break
		}
	}
	f.decoded[id] = d
	f.dmu.Unlock()
	return r, d
}

// current is the decoded record of id when it was read at the file's
// current generation: no write has committed since.
func (f *File) current(id string) (*fileRecord, bool, bool) {
	g := f.gen.Load()
	f.dmu.Lock()
	defer f.dmu.Unlock()
	if d := f.decoded[id]; d != nil && d.gen == g && g != 0 {
		r := d.rec
		return &r, d.listed, true
	}
	return nil, false, false
}

// readAt marks d as what the file held at generation g, when no write
// has committed since (else the next Validate reads the file again).
func (f *File) readAt(d *decodedRecord, g uint64, listed bool) {
	f.dmu.Lock()
	if f.gen.Load() == g {
		d.gen, d.listed = g, listed
	}
	f.dmu.Unlock()
}

type fileTouch struct {
	at      time.Time
	ip      string
	purgeAt time.Time
}

type fileEvent struct {
	E       Event     `json:"e"`
	PurgeAt time.Time `json:"purge_at"`
}

type fileHistory struct {
	Devices   map[string]time.Time `json:"devices"`
	Countries map[string]time.Time `json:"countries"`
	LastLoc   *fileLoc             `json:"last_loc,omitempty"`
	PurgeAt   time.Time            `json:"purge_at"`
}

type fileLoc struct {
	Lat, Lon float64
	At       time.Time
}

type fileDelivery struct {
	outboxEntry
	Due time.Time `json:"due"`
}

// prefixKey is the length of s (uvarint) followed by s.
func prefixKey(s string) []byte {
	b := binary.AppendUvarint(make([]byte, 0, len(s)+40), uint64(len(s)))
	return append(b, s...)
}

func joinKey(prefix, s string) []byte { return append(prefixKey(prefix), s...) }

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// scanPrefix calls fn for every key of b under prefix, in order.
func scanPrefix(b *bolt.Bucket, prefix []byte, fn func(k, v []byte)) {
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		fn(k, v)
	}
}

func getRecord(tx *bolt.Tx, id string) *fileRecord {
	return decodeRecord(id, tx.Bucket(bSessions).Get([]byte(id)))
}

func decodeRecord(id string, v []byte) *fileRecord {
	if v == nil {
		return nil
	}
	return decodeRecordValue(id, v) // binary or, as written before, JSON (file_codec.go)
}

func putRecord(tx *bolt.Tx, r *fileRecord) error {
	r.OthersActive = 0
	return tx.Bucket(bSessions).Put([]byte(r.ID), encodeRecord(r))
}

// liveRecord returns the record unless it is past its purge time.
func liveRecord(tx *bolt.Tx, id string, now time.Time) *fileRecord {
	r := getRecord(tx, id)
	if r == nil || !now.Before(r.PurgeAt) {
		return nil
	}
	return r
}

// userRecords returns the user's records that are not past purge.
func userRecords(tx *bolt.Tx, user string, now time.Time) []*fileRecord {
	prefix := prefixKey(user)
	var out []*fileRecord
	scanPrefix(tx.Bucket(bUsers), prefix, func(k, _ []byte) {
		if r := liveRecord(tx, string(k[len(prefix):]), now); r != nil {
			out = append(out, r)
		}
	})
	return out
}

func listed(tx *bolt.Tx, r *fileRecord) bool {
	return tx.Bucket(bUsers).Get(joinKey(r.UserID, r.ID)) != nil
}

// forget deletes a record and its index entries.
func forget(tx *bolt.Tx, r *fileRecord) error {
	return errors.Join(
		tx.Bucket(bSessions).Delete([]byte(r.ID)),
		tx.Bucket(bUsers).Delete(joinKey(r.UserID, r.ID)),
		tx.Bucket(bIPs).Delete(joinKey(r.IP, r.ID)),
	)
}

// moveIP keeps the per-IP index in step with a session's new address.
func moveIP(tx *bolt.Tx, id, from, to string) error {
	if from == to {
		return nil
	}
	b := tx.Bucket(bIPs)
	return errors.Join(b.Delete(joinKey(from, id)), b.Put(joinKey(to, id), nil))
}

// addEvent appends to the user's trail (user "" is the trail of events
// without a user) and drops the oldest past maxEventsPerUser.
func addEvent(tx *bolt.Tx, user string, e Event, p Policy) error {
	if err := noteEvent(tx, &e); err != nil {
		return err
	}
	b := tx.Bucket(bEvents)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	v := encodeFileEvent(&fileEvent{E: e, PurgeAt: e.At.Add(p.Retention)}, user)
	prefix := prefixKey(user)
	n, _ := trailLength(tx, prefix) // file_evcount.go
	if err := b.Put(append(slices.Clip(prefix), u64(seq)...), v); err != nil {
		return err
	}
	n++
	if n > maxEventsPerUser {
		if k, _ := b.Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
			if err := b.Delete(k); err != nil {
				return err
			}
			n--
		}
	}
	return setTrailLength(tx, prefix, n)
}

func getHistory(tx *bolt.Tx, user string, now time.Time, p Policy) *fileHistory {
	h, ok := decodeHistory(tx.Bucket(bHistory).Get([]byte(user)))
	if !ok || !now.Before(h.PurgeAt) {
		h = fileHistory{}
	}
	if h.Devices == nil {
		h.Devices = map[string]time.Time{}
	}
	if h.Countries == nil {
		h.Countries = map[string]time.Time{}
	}
	h.PurgeAt = now.Add(p.Retention)
	return &h
}

func (h *fileHistory) history() *history {
	out := &history{devices: h.Devices, countries: h.Countries}
	if h.LastLoc != nil {
		out.lastLoc = &located{h.LastLoc.Lat, h.LastLoc.Lon, h.LastLoc.At}
	}
	return out
}

func putHistory(tx *bolt.Tx, user string, h *fileHistory, hs *history) error {
	h.Devices, h.Countries, h.LastLoc = hs.devices, hs.countries, nil
	if hs.lastLoc != nil {
		h.LastLoc = &fileLoc{hs.lastLoc.lat, hs.lastLoc.lon, hs.lastLoc.at}
	}
	return tx.Bucket(bHistory).Put([]byte(user), encodeHistory(h))
}

// applyTouch writes a touch that Validate decided, unless the session
// has ended or been written later since.
func applyTouch(tx *bolt.Tx, id string, t fileTouch) error {
	r := getRecord(tx, id)
	if r == nil || !r.Active() || t.at.Before(r.LastActiveAt) {
		return nil
	}
	if err := moveIP(tx, id, r.IP, t.ip); err != nil {
		return err
	}
	r.LastActiveAt, r.IP, r.PurgeAt = t.at, t.ip, t.purgeAt
	return putRecord(tx, r)
}

// view runs fn in a read transaction that sees every touch answered so far.
func (f *File) view(fn func(tx *bolt.Tx) error) error {
	if err := f.update(nil); err != nil {
		return err
	}
	return f.readView(fn)
}

func decodeCounter(v []byte) (n int64, end time.Time, ok bool) {
	if len(v) != 16 {
		return 0, time.Time{}, false
	}
	return int64(binary.BigEndian.Uint64(v)), time.UnixMilli(int64(binary.BigEndian.Uint64(v[8:]))).UTC(), true
}

func encodeCounter(n int64, end time.Time) []byte {
	return binary.BigEndian.AppendUint64(u64(uint64(n)), uint64(end.UnixMilli()))
}

// Validate implements Store. It reads the file's memory map; a touch that
// is due is recorded for the next group commit, not written here.
func (f *File) Validate(_ context.Context, id string, hash [32]byte, ip string, now time.Time, p Policy) (_ Validation, err error) {
	if err := f.ready(); err != nil {
		return Validation{}, err
	}
	defer f.recovered(&err) // a damaged page: 503 for this request, not a crash
	now = msTime(now)
	// The pending touch first, then the file: a touch leaves the pending
	// set only after its commit, so one of the two has it.
	f.pmu.Lock()
	t, touched := f.pending[id]
	f.pmu.Unlock()
	r, isListed, known := f.current(id)
	if !known {
		g := f.gen.Load() // before the read: a commit after it makes the read stale
		var d *decodedRecord
		if err := f.db.View(func(tx *bolt.Tx) error {
			if r, d = f.recordFor(id, tx.Bucket(bSessions).Get([]byte(id))); r != nil {
				isListed = listed(tx, r)
			}
			return nil
		}); err != nil {
			return Validation{}, err
		}
		if d != nil {
			f.readAt(d, g, isListed)
		}
	}
	if r != nil && !now.Before(r.PurgeAt) {
		r = nil
	}
	if r == nil || r.TokenHash != hash {
		return Validation{Status: Unknown}, nil
	}
	if !r.Active() {
		return Validation{Status: Ended, Session: r.Session.Clone()}, nil
	}
	if !isListed {
		return Validation{Status: Unlisted, Session: r.Session.Clone()}, nil
	}
	if touched && !t.at.Before(r.LastActiveAt) {
		r.LastActiveAt, r.IP, r.PurgeAt = t.at, t.ip, t.purgeAt
	}
	f.sightedBehind(id, r)
	if p.Expired(&r.Session, now) {
		return f.expire(id, hash, now, p)
	}
	if !p.TouchDue(&r.Session, now, ip) {
		return Validation{Status: Valid, Session: r.Session.Clone()}, nil
	}

	// A touch is due: decide again under the lock, since another request
	// may have touched in between.
	f.pmu.Lock()
	if t, ok := f.pending[id]; ok && !t.at.Before(r.LastActiveAt) {
		r.LastActiveAt, r.IP, r.PurgeAt = t.at, t.ip, t.purgeAt
	}
	v := Validation{Status: Valid}
	if p.TouchDue(&r.Session, now, ip) {
		if ip != r.IP {
			v.PrevIP = r.IP
		}
		r.LastActiveAt, r.IP = now, ip
		r.PurgeAt = p.PurgeAt(&r.Session)
		f.pending[id] = fileTouch{at: now, ip: ip, purgeAt: r.PurgeAt}
		v.Touched = true
	}
	f.pmu.Unlock()
	if v.Touched {
		select {
		case f.kick <- struct{}{}:
		default:
		}
	}
	v.Session = r.Session.Clone()
	return v, nil
}

// expire records that an active session ran out of time.
func (f *File) expire(id string, hash [32]byte, now time.Time, p Policy) (Validation, error) {
	var v Validation
	err := f.update(func(tx *bolt.Tx) error {
		r := liveRecord(tx, id, now)
		switch {
		case r == nil || r.TokenHash != hash:
			v = Validation{Status: Unknown}
		case !r.Active():
			v = Validation{Status: Ended, Session: r.Session.Clone()}
		case !listed(tx, r):
			v = Validation{Status: Unlisted, Session: r.Session.Clone()}
		case p.Expired(&r.Session, now):
			r.EndedAt, r.EndReason = p.ExpiresAt(&r.Session), EndExpired
			r.PurgeAt = p.PurgeAt(&r.Session)
			v = Validation{Status: Expired, Session: r.Session.Clone()}
			return putRecord(tx, r)
		default:
			// Touched meanwhile by a request that came in time.
			v = Validation{Status: Valid, Session: r.Session.Clone()}
		}
		return nil
	})
	return v, err
}

func (f *File) end(tx *bolt.Tx, r *fileRecord, at time.Time, reason, actor string, p Policy) (*Session, error) {
	r.EndedAt, r.EndReason = at, reason
	r.PurgeAt = p.PurgeAt(&r.Session)
	if err := putRecord(tx, r); err != nil {
		return nil, err
	}
	if err := addEvent(tx, r.UserID, EndEvent(&r.Session, at, reason, actor), p); err != nil {
		return nil, err
	}
	return r.Session.Clone(), nil
}

// capEnded drops the user's ended sessions past the cap (see pastCap).
func capEnded(tx *bolt.Tx, user string, now time.Time, p Policy) error {
	recs := userRecords(tx, user, now)
	ss := make([]*Session, len(recs))
	byPtr := make(map[*Session]*fileRecord, len(recs))
	for i, r := range recs {
		ss[i] = &r.Session
		byPtr[ss[i]] = r
	}
	var errs []error
	for _, s := range pastCap(ss, now, p) {
		errs = append(errs, forget(tx, byPtr[s]))
	}
	return errors.Join(errs...)
}

// Create implements Store.
func (f *File) Create(_ context.Context, s *Session, p Policy, lim Limit) ([]*Session, error) {
	orig := s
	var ended []*Session
	err := f.update(func(tx *bolt.Tx) error {
		ended = nil
		now := msTime(orig.CreatedAt)
		var active []*fileRecord
		var newest time.Time
		tokens := 0
		for _, r := range userRecords(tx, orig.UserID, now) {
			if r.CreatedAt.After(newest) {
				newest = r.CreatedAt
			}
			// API tokens neither count towards max_sessions nor give way to it.
			if r.Active() && !p.Expired(&r.Session, now) {
				if r.IsToken() {
					tokens++
				} else {
					active = append(active, r)
				}
			}
		}
		if orig.IsToken() {
			if lim.Tokens > 0 && tokens >= lim.Tokens {
				return ErrTooManyTokens
			}
			if orig.Parent != "" {
				var parent *Session
				if r := liveRecord(tx, orig.Parent, now); r != nil {
					parent = &r.Session
				}
				if !parentActive(parent, orig, now, p) {
					return ErrNotFound
				}
			}
		}
		if !now.After(newest) {
			now = newest.Add(time.Millisecond)
		}
		s := orig.Clone()
		s.CreatedAt, s.LastActiveAt = now, now
		if lim.Max > 0 && len(active) >= lim.Max && !s.IsToken() {
			if lim.Mode == LimitReject {
				return ErrLimitReached
			}
			sortForLimit(active, lim.Mode, func(r *fileRecord) *Session { return &r.Session })
			for _, r := range active[:len(active)-lim.Max+1] {
				r.EndedBy = s.ID
				e, err := f.end(tx, r, now, EndLimit, ActorLimit, p)
				if err != nil {
					return err
				}
				ended = append(ended, e)
			}
		}
		if err := capEnded(tx, s.UserID, now, p); err != nil {
			return err
		}
		var others []string
		for _, r := range active {
			if r.Active() {
				others = append(others, r.Country)
			}
		}
		flags := ""
		if !s.IsToken() { // a token has its parent's flags, and is no sighting
			fh := getHistory(tx, s.UserID, now, p)
			h := fh.history()
			flags = signInRisk(h, s, others, now, p.Retention)
			for _, fl := range strings.Split(flags, ",") {
				if fl != "" {
					s.Risk = AddFlag(s.Risk, fl)
				}
			}
			h.remember(s.DeviceID, Sighting{Country: s.Country, Lat: s.Lat, Lon: s.Lon, HasCoord: s.HasCoord}, now)
			if err := putHistory(tx, s.UserID, fh, h); err != nil {
				return err
			}
		}
		r := &fileRecord{Session: *s}
		r.PurgeAt = p.PurgeAt(&r.Session)
		err := errors.Join(putRecord(tx, r),
			tx.Bucket(bUsers).Put(joinKey(s.UserID, s.ID), nil),
			tx.Bucket(bIPs).Put(joinKey(s.IP, s.ID), nil),
			addEvent(tx, s.UserID, LoginEvent(s), p))
		if !s.IsToken() {
			err = errors.Join(err, countStat(tx, statSignIn, now))
		}
		for _, e := range RiskEvents(s, flags, now) {
			err = errors.Join(err, addEvent(tx, s.UserID, e, p))
		}
		if err != nil {
			return err
		}
		// Told to the caller only once the transaction is on its way
		// to commit; a retried transaction recomputes them.
		orig.CreatedAt, orig.LastActiveAt, orig.Risk, orig.OthersActive = s.CreatedAt, s.LastActiveAt, s.Risk, len(others)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ended, nil
}

// Discard implements Store.
func (f *File) Discard(_ context.Context, s *Session, _ Policy) ([]*Session, error) {
	var ended []*Session
	err := f.update(func(tx *bolt.Tx) error {
		ended = nil
		if r := getRecord(tx, s.ID); r != nil && r.UserID == s.UserID {
			if err := forget(tx, r); err != nil {
				return err
			}
		}
		prefix := prefixKey(s.UserID)
		scanPrefix(tx.Bucket(bUsers), prefix, func(k, _ []byte) {
			if r := getRecord(tx, string(k[len(prefix):])); r != nil && r.EndedBy == s.ID {
				ended = append(ended, r.Session.Clone())
			}
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	SortByActivity(ended)
	return ended, nil
}

// StepUp implements Store.
func (f *File) StepUp(_ context.Context, id string, pr Proof, p Policy) (*Session, error) {
	at := msTime(pr.At)
	pr.At = at
	var out *Session
	err := f.update(func(tx *bolt.Tx) error {
		r := liveRecord(tx, id, at)
		if r == nil || !r.Active() || p.Expired(&r.Session, at) {
			return ErrNotFound
		}
		stepUp(&r.Session, pr)
		out = r.Session.Clone()
		return errors.Join(putRecord(tx, r), addEvent(tx, r.UserID, StepUpEvent(&r.Session, at, pr.Method), p))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// NewCredential implements Store.
func (f *File) NewCredential(_ context.Context, userID string) (string, string, [32]byte, error) {
	if err := f.ready(); err != nil {
		return "", "", [32]byte{}, err
	}
	return NewCredentialTagged(UserTagFor(f.tagKey, userID))
}

// Get implements Store.
func (f *File) Get(_ context.Context, id string) (*Session, error) {
	var out *Session
	err := f.view(func(tx *bolt.Tx) error {
		if r := liveRecord(tx, id, f.now()); r != nil {
			out = r.Session.Clone()
		}
		return nil
	})
	if err == nil && out == nil {
		err = ErrNotFound
	}
	return out, err
}

// List implements Store. What the cap drops at the next change is left
// out already.
func (f *File) List(_ context.Context, userID string, now time.Time, p Policy) ([]*Session, error) {
	var all []*Session
	err := f.view(func(tx *bolt.Tx) error {
		for _, r := range userRecords(tx, userID, now) {
			all = append(all, r.Session.Clone())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	drop := pastCap(all, now, p)
	out := slices.DeleteFunc(all, func(s *Session) bool { return slices.Contains(drop, s) })
	SortByActivity(out)
	return out, nil
}

// End implements Store.
func (f *File) End(_ context.Context, id string, at time.Time, reason, actor string, p Policy) (*Session, error) {
	at = msTime(at)
	var out *Session
	err := f.update(func(tx *bolt.Tx) error {
		r := liveRecord(tx, id, at)
		if r == nil || !r.Active() || p.Expired(&r.Session, at) {
			return ErrNotFound
		}
		e, err := f.end(tx, r, at, reason, actor, p)
		if err != nil {
			return err
		}
		out = e
		return capEnded(tx, e.UserID, at, p)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MarkChecked implements Store.
func (f *File) MarkChecked(_ context.Context, id string, was, at time.Time, sealed string) (bool, error) {
	won := false
	err := f.update(func(tx *bolt.Tx) error {
		r := liveRecord(tx, id, f.now())
		if r == nil || !r.Active() {
			return ErrNotFound
		}
		if !msTime(r.CheckedAt).Equal(msTime(was)) {
			return nil
		}
		r.CheckedAt = msTime(at)
		if sealed != "" {
			r.SealedTokens = sealed
		}
		won = true
		return putRecord(tx, r)
	})
	return won, err
}

// SetRoles implements Store.
func (f *File) SetRoles(_ context.Context, id, roles string) (*Session, error) {
	var out *Session
	err := f.update(func(tx *bolt.Tx) error {
		r := liveRecord(tx, id, f.now())
		if r == nil || !r.Active() {
			return ErrNotFound
		}
		r.Roles = roles
		out = r.Session.Clone()
		return putRecord(tx, r)
	})
	return out, err
}

// EndUser implements Store.
func (f *File) EndUser(_ context.Context, userID, exceptID string, at time.Time, reason, actor string, p Policy) ([]*Session, error) {
	at = msTime(at)
	var ended []*Session
	err := f.update(func(tx *bolt.Tx) error {
		ended = nil
		for _, r := range userRecords(tx, userID, at) {
			if r.ID == exceptID || !r.Active() || p.Expired(&r.Session, at) || madeBy(&r.Session, exceptID) {
				continue
			}
			e, err := f.end(tx, r, at, reason, actor, p)
			if err != nil {
				return err
			}
			ended = append(ended, e)
		}
		return capEnded(tx, userID, at, p)
	})
	if err != nil {
		return nil, err
	}
	SortByActivity(ended)
	return ended, nil
}

// EndWithTokens implements Store.
func (f *File) EndWithTokens(_ context.Context, id string, at time.Time, reason, actor string, p Policy) ([]*Session, error) {
	at = msTime(at)
	var ended []*Session
	err := f.update(func(tx *bolt.Tx) error {
		ended = nil
		r := liveRecord(tx, id, at)
		if r == nil {
			return ErrNotFound
		}
		if r.Active() && !p.Expired(&r.Session, at) {
			e, err := f.end(tx, r, at, reason, actor, p)
			if err != nil {
				return err
			}
			ended = append(ended, e)
		}
		var tokens []*Session
		for _, k := range userRecords(tx, r.UserID, at) {
			if !madeBy(&k.Session, id) || !k.Active() || p.Expired(&k.Session, at) {
				continue
			}
			e, err := f.end(tx, k, at, reason, actor, p)
			if err != nil {
				return err
			}
			tokens = append(tokens, e)
		}
		if len(ended)+len(tokens) == 0 {
			return ErrNotFound
		}
		SortByActivity(tokens)
		ended = append(ended, tokens...)
		return capEnded(tx, r.UserID, at, p)
	})
	if err != nil {
		return nil, err
	}
	return ended, nil
}

// ByIP implements Store, from the per-IP index.
func (f *File) ByIP(_ context.Context, ip string, now time.Time, p Policy, after string, limit int) ([]*Session, string, error) {
	var out []*Session
	err := f.view(func(tx *bolt.Tx) error {
		prefix := prefixKey(ip)
		scanPrefix(tx.Bucket(bIPs), prefix, func(k, _ []byte) {
			if r := liveRecord(tx, string(k[len(prefix):]), now); r != nil && r.IP == ip && r.Active() && !p.Expired(&r.Session, now) {
				out = append(out, r.Session.Clone())
			}
		})
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	SortByActivity(out)
	return PageByActivity(out, after, limit)
}

// Users implements Store. It reads the whole index: for rare admin
// actions only.
func (f *File) Users(context.Context) ([]string, error) {
	var out []string
	err := f.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bUsers).ForEach(func(k, _ []byte) error {
			if u := firstPart(k); u != nil && (len(out) == 0 || out[len(out)-1] != string(u)) {
				out = append(out, string(u))
			}
			return nil
		})
	})
	slices.Sort(out)
	return slices.Compact(out), err
}

// firstPart is the length-prefixed part a key starts with.
func firstPart(k []byte) []byte {
	n, l := binary.Uvarint(k)
	if l <= 0 || uint64(len(k)-l) < n {
		return nil
	}
	return k[l : l+int(n)]
}

// Stash implements Store.
func (f *File) Stash(_ context.Context, key string, value []byte, ttl time.Duration, now time.Time) error {
	v := append(u64(uint64(now.Add(ttl).UnixMilli())), value...)
	return f.update(func(tx *bolt.Tx) error { return tx.Bucket(bStash).Put([]byte(key), v) })
}

// Link implements Store.
func (f *File) Link(_ context.Context, key, member string, ttl time.Duration, now time.Time) error {
	return f.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bLinks)
		l := decodeLinkSet(b.Get([]byte(key)))
		l.add(member, now.Add(ttl), now)
		return b.Put([]byte(key), l.encode())
	})
}

// Linked implements Store.
func (f *File) Linked(_ context.Context, key string, now time.Time) ([]string, error) {
	var out []string
	err := f.view(func(tx *bolt.Tx) error {
		out = decodeLinkSet(tx.Bucket(bLinks).Get([]byte(key))).members(now)
		return nil
	})
	return out, err
}

// Take implements Store: read and delete in one transaction.
func (f *File) Take(_ context.Context, key string, now time.Time) ([]byte, error) {
	var out []byte
	found := false
	err := f.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bStash)
		v := b.Get([]byte(key))
		if v == nil {
			return nil
		}
		if len(v) >= 8 && now.Before(time.UnixMilli(int64(binary.BigEndian.Uint64(v)))) {
			out, found = slices.Clone(v[8:]), true
		}
		return b.Delete([]byte(key))
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrNotFound
	}
	return out, nil
}

// Record implements Store.
func (f *File) Record(_ context.Context, e Event, p Policy) error {
	return f.update(func(tx *bolt.Tx) error { return addEvent(tx, e.UserID, e, p) })
}

// Events implements Store.
func (f *File) Events(_ context.Context, userID string, since time.Time, limit int) ([]Event, error) {
	if err := f.ready(); err != nil {
		return nil, err
	}
	if err := f.settleBehind(); err != nil { // the events of sightings written behind
		return nil, err
	}
	now := f.now()
	var out []Event
	err := f.readView(func(tx *bolt.Tx) error {
		prefix := prefixKey(userID)
		c := tx.Bucket(bEvents).Cursor()
		// The newest first: from the key after the user's last.
		k, _ := c.Seek(append(slices.Clip(prefix), u64(^uint64(0))...))
		var v []byte
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			if e, ok := decodeFileEvent(userID, v); ok && now.Before(e.PurgeAt) && !e.E.At.Before(since) {
				out = append(out, e.E)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, newestFirst)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

var _ Store = (*File)(nil)
