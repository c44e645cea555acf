package session

import (
	"context"
	"errors"
	"time"
)

// Errors every store returns in the same cases.
var (
	// ErrNotFound: no session (or user) with that id.
	ErrNotFound = errors.New("session not found")
	// ErrLimitReached: max_sessions with mode reject refused a new session.
	ErrLimitReached = errors.New("session limit reached")
	// ErrBadCursor: a list position the store did not give.
	ErrBadCursor = errors.New("invalid cursor")
	// ErrStoreFull: the store refused a write for lack of memory (Redis
	// at maxmemory with noeviction).
	ErrStoreFull = errors.New("session store out of memory")
	// ErrTooManyTokens: the user has Limit.Tokens live API tokens already.
	ErrTooManyTokens = errors.New("too many API tokens")
)

// LimitMode says which session gives way when a user has too many.
type LimitMode string

// Limit modes of max_sessions.
const (
	LimitOldest       LimitMode = "oldest"
	LimitLeastRecent  LimitMode = "least_recent"
	LimitReject       LimitMode = "reject"
	DefaultMaxSession           = 5
)

// Limit caps the active sessions of one user; Max 0 is unlimited. API
// tokens are outside Max and Mode: Tokens caps them on its own (0 is
// unlimited), and one more is refused.
type Limit struct {
	Max    int
	Mode   LimitMode
	Tokens int
}

// Status is the outcome of validating a credential.
type Status int

// Validation outcomes. Unknown covers a missing session and a secret that
// does not match; the caller cannot and need not tell them apart.
// Unlisted is a session that is active by its own record but that its
// user's index no longer lists (Redis evicted the index): it is not valid,
// since nothing that ends a user's sessions (sign-out everywhere, an
// admin's revocation, max_sessions) could reach it.
const (
	Unknown Status = iota
	Valid
	Expired
	Ended
	Unlisted
)

// Validation is what Store.Validate found.
type Validation struct {
	Status  Status
	Session *Session // set for Valid, Expired, Ended and Unlisted
	Touched bool     // activity (and maybe the IP) was written
	// TouchRefused: activity was due but the store refused the write for
	// lack of memory; the session is valid all the same. (A new IP that
	// cannot be written is ErrStoreFull instead.)
	TouchRefused bool
	// PrevIP is the session's IP before this request, when Touched
	// changed it; empty otherwise.
	PrevIP string
}

// Store keeps sessions, and what the gateways that share them share: the
// rate-limit counters, the audit trail and the notification outbox. Every
// method is one atomic operation on the backing store (one Redis script
// or transaction), so concurrent gateways sharing it agree; the hot path,
// Validate, is one round trip. Each part is an interface of its own, so
// that a consumer takes the part it needs (the dispatcher an Outbox).
type Store interface {
	Sessions
	Counters
	Audit
	Outbox
	Pending
	Links
	Statistics

	// Close releases what the store holds.
	Close() error
}

// Sessions is the session lifecycle: sign-in, validation, sightings,
// listing and ending.
type Sessions interface {
	// NewCredential mints a fresh session id for userID (its tag keyed
	// under the store's secret, so that all of the user's ids share it)
	// and a secret: the session id, the cookie value and the secret's hash.
	NewCredential(ctx context.Context, userID string) (id, cookie string, hash [32]byte, err error)

	// Create stores s (its ID, TokenHash, times and fields set by the
	// caller) and enforces lim atomically, ending sessions that give way.
	// It writes a login event, and a revoke event per ended session.
	// Sign-ins of one user are strictly ordered: if s.CreatedAt is not
	// later than every other session of the user, the store moves it (and
	// LastActiveAt) to one millisecond after the newest, and says so in s.
	// It computes the sign-in risk flags (new-device, new-country,
	// impossible-travel, concurrent-countries) from the user's history,
	// sets them in s.Risk, records the sighting and writes a risk event
	// per flag.
	//
	// An API token (Kind token) is outside Max: it neither counts nor
	// gives way. It keeps the risk flags the caller gave it (its
	// parent's) and adds none, nor does it touch the history. It is
	// refused with ErrTooManyTokens when the user has lim.Tokens live
	// tokens, and with ErrNotFound when it names a Parent that is not an
	// active session of the same user (revoked meanwhile: a token made
	// then would outlive the revocation).
	Create(ctx context.Context, s *Session, p Policy, lim Limit) (ended []*Session, err error)

	// Discard undoes a Create that failed or went unanswered, whose
	// outcome the caller cannot know (a reply lost on its way back): the
	// session goes if it was written, and a Create of it still on its way
	// to the store is refused. Nothing of the sign-in stays listed or
	// counts towards the limit. The sessions that Create ended for the
	// limit stay ended; Discard returns them, so that the caller records
	// them as a successful sign-in would have.
	Discard(ctx context.Context, s *Session, p Policy) (ended []*Session, err error)

	// Validate checks the credential (id, SHA-256 of the secret) at now
	// from ip, and writes activity when p says a touch is due. A session
	// that its user's index does not list is Unlisted, never Valid.
	Validate(ctx context.Context, id string, hash [32]byte, ip string, now time.Time, p Policy) (Validation, error)

	// Sight records that an active session was just seen from a new IP:
	// its location (cleared when unknown), the user's history, an
	// ip_change event, a country_change event when the country differs,
	// and impossible-travel (with a risk event) when the move from the
	// user's last located sighting was too fast. It returns the session as
	// updated, or ErrNotFound when it is no longer active.
	Sight(ctx context.Context, id string, sg Sighting, at time.Time, p Policy) (*Session, error)

	// StepUp records that the user of an active session proved who they
	// are again (SPEC 11): AuthenticatedAt becomes at, the risk flags kept
	// on the session are cleared, and where the session is now (its IP and
	// country) becomes the place ip-changed and country-changed are
	// measured from (StepUpIP, StepUpCountry); a provider's step-up also
	// records its session id, when it gave one. It writes a step_up event whose reason is the method.
	// It returns the session as updated, or ErrNotFound when there is no
	// active session with that id.
	StepUp(ctx context.Context, id string, pr Proof, p Policy) (*Session, error)

	// Get returns one session, active or ended within retention.
	Get(ctx context.Context, id string) (*Session, error)

	// List returns a user's sessions, active and ended within retention
	// (the newest maxEndedPerUser of those no longer active at now, under
	// p), newest activity first.
	List(ctx context.Context, userID string, now time.Time, p Policy) ([]*Session, error)

	// End ends one active session and records why. It returns the
	// session as ended, or ErrNotFound if there is no active session
	// with that id.
	End(ctx context.Context, id string, at time.Time, reason, actor string, p Policy) (*Session, error)

	// EndUser ends every active session of a user except exceptID (which
	// may be empty) and the API tokens exceptID made, and returns those it
	// ended.
	EndUser(ctx context.Context, userID, exceptID string, at time.Time, reason, actor string, p Policy) ([]*Session, error)

	// EndWithTokens revokes a session and the API tokens it made, in one
	// operation (SPEC 12): the session when it is active, and every
	// active token whose Parent it is, also when the session itself had
	// already ended (signed out, expired). It returns those it ended,
	// the session first; ErrNotFound when it ended nothing.
	EndWithTokens(ctx context.Context, id string, at time.Time, reason, actor string, p Policy) ([]*Session, error)

	// ByIP returns the active sessions last seen from ip, newest first,
	// a page at a time: at most limit of them after the position after
	// (empty: from the start), and the position of the next page (empty
	// when there is none). A position is opaque; one the store did not
	// give is ErrBadCursor.
	ByIP(ctx context.Context, ip string, now time.Time, p Policy, after string, limit int) (page []*Session, next string, err error)

	// MarkChecked records that an OIDC session's provider is being, or
	// was, asked about it (SPEC 11: recheck, pass_access_token), as a
	// compare-and-set: it moves CheckedAt from was to at only while the
	// session still reads was (to the millisecond), and with sealed not
	// empty it replaces SealedTokens in the same operation. Of the
	// gateways (and requests) that read the same session, one wins, so
	// that a refresh token the provider rotates is spent once. It reports
	// whether it wrote; ErrNotFound when no active session has that id.
	MarkChecked(ctx context.Context, id string, was, at time.Time, sealed string) (bool, error)

	// SetRoles replaces an active session's roles with what its provider
	// said at a recheck (SPEC 11: a recheck applies the provider's answer
	// in full); empty removes them. It returns the session as updated, or
	// ErrNotFound when no active session has that id.
	SetRoles(ctx context.Context, id, roles string) (*Session, error)

	// Users lists the users that have sessions in the store (active or
	// within retention), for operations on everyone; it walks the whole
	// store, so it is for rare admin actions, never the request path.
	Users(ctx context.Context) ([]string, error)
}

// Counters are the rate limits' shared counts.
type Counters interface {
	// Hit counts one attempt under key in a fixed window: it returns the
	// count so far in the current window and how long the window has left.
	// Gateways sharing the store share the count.
	Hit(ctx context.Context, key string, window time.Duration, now time.Time) (count int64, resetIn time.Duration, err error)

	// Refund takes one count back from key's current window, never below
	// zero: an attempt counted before it was checked (so that concurrent
	// guesses cannot all slip under the limit) that turned out right.
	// A window that has ended, or none, is left alone.
	Refund(ctx context.Context, key string, now time.Time) error
}

// Audit is the users' trail of security events.
type Audit interface {
	// Record writes an audit event that no state change carries (a rate
	// limit, say): to the user's trail when it names a user, else to the
	// store's capped trail of events without a user.
	Record(ctx context.Context, e Event, p Policy) error

	// Events returns a user's audit events since a time, newest first, at
	// most limit (0: all that are kept).
	Events(ctx context.Context, userID string, since time.Time, limit int) ([]Event, error)
}

// Outbox holds the security notifications until a dispatcher delivers
// them. Each target (a webhook URL, or the mail channel) is a channel of
// its own: its own queue and cap, claimed by its own sender, so that a
// dead or hanging receiver holds up and fills only its own channel.
type Outbox interface {
	// Enqueue puts a notice for target in target's channel; a channel
	// holding OutboxCap notices refuses it with ErrOutboxFull.
	Enqueue(ctx context.Context, target string, n Notice) error

	// Claim takes up to max deliveries of target's channel that are due,
	// oldest first, waiting up to block for one. With Redis, several
	// gateways share the outbox and each delivery goes to one of them; a
	// delivery claimed by a gateway that died is claimed again after a
	// while.
	Claim(ctx context.Context, consumer, target string, max int, block time.Duration) ([]Delivery, error)

	// Ack removes a delivered (or abandoned) delivery.
	Ack(ctx context.Context, d Delivery) error

	// Retry puts a delivery back, due at at, with one more attempt counted.
	Retry(ctx context.Context, d Delivery, at time.Time) error

	// Targets lists the targets whose channel holds notices, so that a
	// dispatcher finds those queued for a receiver no config names now.
	Targets(ctx context.Context) ([]string, error)
}

// Pending keeps sign-ins under way: one-use records with a TTL.
type Pending interface {
	// Stash keeps value under key until now+ttl, for Take to read once:
	// a sign-in under way (OIDC state and nonce, an account's password
	// step before its code). A key stashed again is replaced.
	Stash(ctx context.Context, key string, value []byte, ttl time.Duration, now time.Time) error

	// Take returns what Stash kept under key and removes it in the same
	// operation, so that of two concurrent Takes one gets it; ErrNotFound
	// when there is nothing (never stashed, taken, or expired at now).
	Take(ctx context.Context, key string, now time.Time) ([]byte, error)
}

// Links are small sets of members, each kept until its own time: which
// users a provider's subject or session id signed in as, so that the
// provider's back-channel logout finds their sessions. Every Link of a
// member moves its time later, never earlier.
type Links interface {
	// Link adds member to the set under key until now+ttl. A set keeps
	// its newest maxLinks members.
	Link(ctx context.Context, key, member string, ttl time.Duration, now time.Time) error

	// Linked returns the members of the set under key whose time has not
	// passed at now (none: an empty list, not an error).
	Linked(ctx context.Context, key string, now time.Time) ([]string, error)
}

// maxLinks caps a link set: a subject signs in as a handful of user ids
// at most (its email changed, say); a set that grows past it loses its
// oldest member first.
const maxLinks = 16
