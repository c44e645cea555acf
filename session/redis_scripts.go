package session

import (
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Key layout, all under the user's hash tag so that every script below
// touches one cluster slot:
//
//	<prefix>{<tag>}:s:<id>    hash: one session
//	<prefix>{<tag>}:u:<user>  sorted set: the user's session ids by last activity,
//	                          and the sign-in history the risk flags read, as
//	                          members d:<device id>, c:<country> and l:<lat>,<lon>
//	                          scored by when each was last seen
//	<prefix>{<tag>}:e:<user>  list: the user's audit events but sign-ins, newest
//	                          first, capped (each session is its own record
//	                          of its sign-in: see Events)
//
// The history shares the index's key because a key costs Redis about a
// hundred bytes before its contents, and most users have one session.
//
// Every key a script touches is passed in KEYS, never built inside it:
// during a live resharding Redis Cluster checks only KEYS, answering ASK
// or TRYAGAIN while they are split between nodes, and a key built inside
// the script would be written on the wrong node. The scripts that walk a
// user's sessions get the session keys from a read of the index just
// before; if a sign-in came between, they refuse (STALEKEYS) and the
// caller reads again.
//
// Every key gets a TTL: a session expires retention after it ends or would
// expire, the index and the stream live as long as their longest member.
//
// Times are Unix milliseconds from the gateway's clock, passed in as ARGV,
// so that a test can move time and all gateways apply one rule.

// luaPrelude is shared by the scripts; Redis runs each script alone, so
// it is prepended to each. Its first lines are the Go constants the
// scripts share, spelled for Lua from the Go values.
var luaPrelude = `
local UNKNOWN, VALID, EXPIRED, ENDED, NEEDS_OWNER, UNLISTED = ` + luaList(validateUnknown, validateValid, validateExpired,
	validateEnded, validateNeedsOwner, validateUnlisted) + `

-- twin of sameDevice (device.go): the digest, or the id in clear as
-- stores kept it before digests
local function same_device(stored, digest)
  return stored == digest or (#stored == ` + strconv.Itoa(legacyDeviceLen) + ` and redis.sha1hex('` + deviceDigestLabel + `' .. stored) == digest)
end

local function hmap(flat)
  local m = {}
  for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
  return m
end

-- an API token (kd token) has its own lifetime (tx) and no idle timeout
local function expires_at(m, lifetime, idle)
  if m.kd == 'token' and m.tx then return tonumber(m.ca) + tonumber(m.tx) end
  local exp = tonumber(m.ca) + lifetime
  if idle > 0 then
    local i = tonumber(m.la) + idle
    if i < exp then exp = i end
  end
  return exp
end

-- keep a key at least ttl more milliseconds
local function extend(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end

-- The admin console's counters (redis_stats.go): the hash STATS, the
-- last of KEYS in the scripts that count (nil in the others). Each of the
-- StatsHours hours and StatsDays days is a slot of a ring: field h<n>
-- holds which hour the slot counts, h<n>i, h<n>f and h<n>r its sign-ins,
-- failed sign-ins and revocations; a new hour clears the slot it takes
-- over. r<n> are the latest risk and login_failed events, rn the count
-- of them written. So the hash never holds more than a few hundred fields.
local STATS = nil

local function stat_bump(f, n, stamp, kind)
  local sk = f .. string.format('%d', n)
  if redis.call('HGET', STATS, sk) ~= stamp then
    redis.call('HSET', STATS, sk, stamp, sk .. 'i', '0', sk .. 'f', '0', sk .. 'r', '0')
  end
  local ck = sk .. kind
  redis.call('HSET', STATS, ck, string.format('%d', tonumber(redis.call('HGET', STATS, ck) or '0') + 1))
end

-- count_stat adds one of kind (i, f, r) to the hour and the day of at
local function count_stat(kind, at)
  if not STATS then return end
  local h, d = math.floor(at / 3600000), math.floor(at / 86400000)
  stat_bump('h', h % ` + statsHoursLua + `, string.format('%d', h), kind)
  stat_bump('d', d % ` + statsDaysLua + `, string.format('%d', d), kind)
  redis.call('PEXPIRE', STATS, (` + statsDaysLua + ` + 1) * 86400000)
end

-- note_event counts an event and keeps it among the recent ones, as its
-- type says (the twin of noteEvent, file_stats.go); values.u is its user
local function note_event(values)
  if not STATS then return end
  local typ = values[1]
  if typ == 'revoke' then count_stat('r', tonumber(values[2])) end
  if typ == 'login_failed' then count_stat('f', tonumber(values[2])) end
  if typ == 'risk' or typ == 'login_failed' then
    local v = {unpack(values)}
    if v[3] == '' and values.u then v[3] = values.u end
    local n = tonumber(redis.call('HGET', STATS, 'rn') or '0') + 1
    redis.call('HSET', STATS, 'rn', string.format('%d', n),
      'r' .. string.format('%d', n % ` + maxRecentEventsLua + `), table.concat(v, '\31'))
  end
end

-- add_event puts an event at the head of a capped list (newest first) and
-- refreshes the list's TTL; values in the order of eventValues (Go).
local function add_event(key, at, retention, values)
  note_event(values)
  redis.call('LPUSH', key, table.concat(values, '\31'))
  redis.call('LTRIM', key, 0, ` + maxEventsPerUserLua + ` - 1)
  extend(key, retention)
end

local function event_fields(typ, at, id, m, reason, actor)
  local t = {typ, string.format('%d', at), '', id, m.ip or '', m.co or '', m.ci or '', m.dn or '',
    m.br or '', m.os or '', m.di or '', reason, actor}
  t.u = m.u -- not written to the user's own list; note_event reads it
  return t
end

-- end_one ends the session in key (hash m) and records the event.
local function end_one(key, id, m, at, reason, actor, retention, evkey)
  redis.call('HSET', key, 'ea', at, 'er', reason)
  m.ea, m.er = tostring(at), reason
  redis.call('PEXPIREAT', key, at + retention)
  local typ = 'revoke'
  if reason == 'logout' then typ = 'logout' end
  add_event(evkey, at, retention, event_fields(typ, at, id, m, reason, actor))
end

-- impossible travel: the twin of ImpossibleTravel in risk.go
-- (TestImpossibleTravelTwinsAgree)
local function impossible(lat1, lon1, t1, lat2, lon2, t2)
  local r = math.pi / 180
  local dlat, dlon = (lat2 - lat1) * r, (lon2 - lon1) * r
  local a = math.sin(dlat / 2) ^ 2 + math.cos(lat1 * r) * math.cos(lat2 * r) * math.sin(dlon / 2) ^ 2
  local d = 2 * ` + earthRadiusLua + ` * math.asin(math.min(1, math.sqrt(a)))
  if d <= ` + minTravelKmLua + ` then return false end
  local hours = (t2 - t1) / 3600000
  if hours < ` + minTravelHoursLua + ` then hours = ` + minTravelHoursLua + ` end
  return d / hours > ` + maxTravelKmhLua + `
end

local function has_flag(list, flag)
  if not list then return false end
  for f in string.gmatch(list, '[^,]+') do
    if f == flag then return true end
  end
  return false
end

local function add_flag(list, flag)
  if has_flag(list, flag) then return list end
  if not list or list == '' then return flag end
  return list .. ',' .. flag
end

-- read_index splits a user index into its session ids and the history
-- (d:/c: member -> time; loc = "lat,lon,time" and locm its member).
-- Session ids are hex, so a ':' second marks a history member.
local function read_index(ukey)
  local ids, hist = {}, {}
  local flat = redis.call('ZRANGE', ukey, 0, -1, 'WITHSCORES')
  for i = 1, #flat, 2 do
    local mbr, at = flat[i], tonumber(flat[i + 1])
    local kind = string.sub(mbr, 1, 2)
    if kind == 'l:' then
      hist.loc, hist.locm = string.sub(mbr, 3) .. ',' .. string.format('%d', at), mbr
    elseif string.sub(mbr, 2, 2) == ':' then
      hist[mbr] = at
    else
      ids[#ids + 1] = mbr
    end
  end
  return ids, hist
end

-- record_location keeps only the latest location in the index
local function record_location(ukey, hist, lat, lon, at)
  if hist.locm then redis.call('ZREM', ukey, hist.locm) end
  redis.call('ZADD', ukey, at, 'l:' .. lat .. ',' .. lon)
end

-- keep_login_ip writes the login IP before the session's IP first
-- changes: until then it is the current one (see fields in Go)
local function keep_login_ip(key, m, ip)
  if m.lip == nil and m.ip ~= ip then
    m.lip = m.ip or ''
    redis.call('HSET', key, 'lip', m.lip)
  end
end

-- all_declared tells whether every session in ids was passed in KEYS,
-- from position first on (see STALEKEYS above)
local function all_declared(ids, skp, first)
  local declared = {}
  for i = first, #KEYS do declared[KEYS[i]] = true end
  for _, sid in ipairs(ids) do
    if not declared[skp .. sid] then return false end
  end
  return true
end

local stale_keys = 'STALEKEYS the user index changed'
local session_exists = 'SESSIONEXISTS the session was written or discarded before'

-- the last located sighting in a history: lat, lon, time
local function last_loc(hist)
  if not hist.loc then return nil end
  local lat, lon, t = string.match(hist.loc, '^([^,]+),([^,]+),(%d+)$')
  if not t then return nil end
  return tonumber(lat), tonumber(lon), tonumber(t)
end

local function flatten(m)
  local out = {}
  for k, v in pairs(m) do out[#out + 1] = k; out[#out + 1] = v end
  return out
end

-- is_active: not ended and not out of time at now
local function is_active(m, now, lifetime, idle)
  return m.ca ~= nil and m.ea == nil and now < expires_at(m, lifetime, idle)
end

-- ended_entry describes a session that is no longer active (ended, or out
-- of time) for cap_ended: when it ended, as Policy.View shows it
local function ended_entry(sid, m, lifetime, idle)
  return {id = sid, m = m, at = tonumber(m.ea) or expires_at(m, lifetime, idle)}
end

-- cap_ended keeps a user's newest ` + maxEndedPerUserLua + ` ended sessions (SPEC
-- 10) and drops the older ones from the index and the store, so that no
-- operation's cost grows with how often the user signed in. A dropped
-- session's sign-in goes to the event list, since the session was its
-- record (see Events). It returns the dropped ids as a set.
local function cap_ended(ukey, evkey, skp, ended, retention)
  local dropped = {}
  if #ended <= ` + maxEndedPerUserLua + ` then return dropped end
  table.sort(ended, function(a, b)
    if a.at ~= b.at then return a.at > b.at end
    return a.id > b.id
  end)
  for i = ` + maxEndedPerUserLua + ` + 1, #ended do
    local e, m = ended[i], ended[i].m
    redis.call('DEL', skp .. e.id)
    redis.call('ZREM', ukey, e.id)
    dropped[e.id] = true
    local at = tonumber(m.ca)
    local login = {ip = m.lip or m.ip, co = m.lco or m.co, ci = m.lci or m.ci,
      dn = m.dn, br = m.br, os = m.os, di = m.di}
    add_event(evkey, at, retention, event_fields('login', at, e.id, login, '', ''))
  end
  return dropped
end
`

// Constants shared with the Go side, spelled for Lua from the Go values,
// so that the two cannot drift apart.
var (
	maxEventsPerUserLua = strconv.Itoa(maxEventsPerUser)
	maxEndedPerUserLua  = strconv.Itoa(maxEndedPerUser)
	statsHoursLua       = strconv.Itoa(StatsHours)
	statsDaysLua        = strconv.Itoa(StatsDays)
	maxRecentEventsLua  = strconv.Itoa(maxRecentEvents)
	earthRadiusLua      = luaNumber(earthRadiusKm)
	minTravelKmLua      = luaNumber(MinTravelKm)
	maxTravelKmhLua     = luaNumber(MaxTravelKmh)
	minTravelHoursLua   = luaNumber(minTravelInterval.Hours())
)

// The first element of validateScript's reply; Lua reads them by name
// (luaPrelude).
const (
	validateUnknown = iota
	validateValid
	validateExpired
	validateEnded
	validateNeedsOwner // KEYS lacks the owner's index: call again with it
	validateUnlisted
)

// luaNumber spells a Go number as Lua reads it back, exactly.
func luaNumber(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// luaList spells Go integers as a Lua expression list.
func luaList(ns ...int) string {
	s := ""
	for i, n := range ns {
		if i > 0 {
			s += ", "
		}
		s += strconv.Itoa(n)
	}
	return s
}

// validateScript: KEYS session, then the owner's user index when the
// caller knows the owner. ARGV hash, now, lifetime, idle, touch, ip,
// retention, user index key prefix, id. It writes the session only (and
// the index's TTL, which must outlast it): lists sort by the sessions' own
// last activity. Returns {UNKNOWN}, {VALID, flat, touched} (with a
// fourth element when a touch was due and Redis, full, refused it),
// {EXPIRED, flat} (now ended), {ENDED, flat}, {NEEDS_OWNER, user} when KEYS
// lacks the owner's index (call again with it), {UNLISTED, flat} when the index does not
// list the session (evicted: not valid, since nothing that ends the user's
// sessions can reach it).
var validateSource = luaPrelude + `
-- written runs a write that Redis, full (maxmemory with noeviction), may
-- refuse: false when it did; any other error is raised
local function written(...)
  local r = redis.pcall(...)
  if type(r) == 'table' and r.err then
    if string.sub(r.err, 1, 4) == 'OOM ' then return false end
    error(r)
  end
  return true
end

local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then return {UNKNOWN} end
local m = hmap(flat)
if m.th ~= ARGV[1] then return {UNKNOWN} end
if m.ea then return {ENDED, flat} end
if KEYS[2] ~= ARGV[8] .. m.u then return {NEEDS_OWNER, m.u} end
if not redis.call('ZSCORE', KEYS[2], ARGV[9]) then return {UNLISTED, flat} end
local now, lifetime, idle = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local touch, ip, retention = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local exp = expires_at(m, lifetime, idle)
if now >= exp then
  -- expired whether or not a full Redis lets it be written
  if written('HSET', KEYS[1], 'ea', exp, 'er', 'expired') then
    redis.call('PEXPIREAT', KEYS[1], exp + retention)
  end
  return {EXPIRED, flat}
end
if m.ip ~= ip or now - tonumber(m.la) >= touch or (m.kd == 'token' and m.la == m.ca) then
  local f = {'la', now, 'ip', ip}
  if m.lip == nil and m.ip ~= ip then
    f[5], f[6] = 'lip', m.ip or '' -- the login IP, before the IP first changes
  end
  if not written('HSET', KEYS[1], unpack(f)) then return {VALID, flat, 0, 1} end
  m.la = tostring(now)
  local keep = expires_at(m, lifetime, idle) + retention
  redis.call('PEXPIREAT', KEYS[1], keep)
  extend(KEYS[2], keep - now)
  return {VALID, flat, 1}
end
return {VALID, flat, 0}
`

var validateScript = redis.NewScript(validateSource)

// createScript: KEYS session, user index (with the history), events, then
// the key of every session in the index, then the stats hash.
// ARGV session key prefix, id, now, lifetime, idle, retention, max, mode,
// the most live API tokens (0: no cap), then the session's field/value
// pairs.
// Returns {-1} when mode reject refuses, {-2} when a token is over the
// cap on tokens, {-3} when a token's parent is not an active session of
// the user, else {1, created_at, risk,
// others, id1, flat1, id2, flat2…}: the creation time used (later than any
// other session of the user), the sign-in risk flags, how many other
// sessions stay active, and the sessions the limit ended.
var createScript = redis.NewScript(luaPrelude + `
STATS = KEYS[#KEYS]
local skp, id = ARGV[1], ARGV[2]
local now, lifetime, idle = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local retention, max, mode = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local max_tokens = tonumber(ARGV[9])
-- a replay (a retry after a lost reply) or a sign-in already discarded
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply(session_exists) end
local new = {}
for i = 10, #ARGV - 1, 2 do new[ARGV[i]] = ARGV[i + 1] end
local new_token = new.kd == 'token'
local active, ended = {}, {}
local newest, tokens, parent = 0, 0, nil
local ids, hist = read_index(KEYS[2])
if not all_declared(ids, skp, 4) then return redis.error_reply(stale_keys) end
for _, sid in ipairs(ids) do
  local m = hmap(redis.call('HGETALL', skp .. sid))
  if m.ca == nil then
    redis.call('ZREM', KEYS[2], sid)
  else
    if tonumber(m.ca) > newest then newest = tonumber(m.ca) end
    if sid == new.pa then parent = m end
    if is_active(m, now, lifetime, idle) then
      -- API tokens neither count towards max_sessions nor give way to it
      if m.kd ~= 'token' then
        active[#active + 1] = {id = sid, ca = tonumber(m.ca), la = tonumber(m.la), m = m}
      else
        tokens = tokens + 1
      end
    else
      ended[#ended + 1] = ended_entry(sid, m, lifetime, idle)
    end
  end
end
if new_token then
  if max_tokens > 0 and tokens >= max_tokens then return {-2} end
  -- the twin of parentActive (Go)
  if new.pa and (parent == nil or parent.u ~= new.u or parent.kd == 'token' or
     not is_active(parent, now, lifetime, idle)) then return {-3} end
end
local out = {1, now, '', 0}
if max > 0 and #active >= max and not new_token then
  if mode == 'reject' then return {-1} end
  table.sort(active, function(a, b)
    if mode == 'least_recent' and a.la ~= b.la then return a.la < b.la end
    if a.ca ~= b.ca then return a.ca < b.ca end
    return a.id < b.id
  end)
  for i = 1, #active - max + 1 do
    local a = active[i]
    end_one(skp .. a.id, a.id, a.m, now, 'limit', 'limit', retention, KEYS[3])
    redis.call('HSET', skp .. a.id, 'eb', id) -- for discardScript
    ended[#ended + 1] = ended_entry(a.id, a.m, lifetime, idle)
    out[#out + 1] = a.id
    out[#out + 1] = flatten(a.m)
  end
end
cap_ended(KEYS[2], KEYS[3], skp, ended, retention)
-- sign-ins of one user are strictly ordered, so "oldest" is never a tie
if now <= newest then now = newest + 1; out[2] = now end
local fields = {}
for i = 10, #ARGV do fields[#fields + 1] = ARGV[i] end
local nowstr = string.format('%d', now)
for i = 1, #fields, 2 do
  if fields[i] == 'ca' or fields[i] == 'la' then fields[i + 1] = nowstr end
end
redis.call('HSET', KEYS[1], unpack(fields))
local m = hmap(fields)
if not new_token then count_stat('i', now) end

local flags = m.rk or ''
-- risk: the first sign-in within retention is the baseline; a token has
-- its parent's flags, raises none and is no sighting
if not new_token then
local since = now - retention
local baseline, known_device, known_country = true, false, false
for k, ts in pairs(hist) do
  local kind, name = string.sub(k, 1, 2), string.sub(k, 3)
  if (kind == 'd:' or kind == 'c:') and ts < since then
    redis.call('ZREM', KEYS[2], k) -- forgotten after retention
  elseif kind == 'd:' then
    baseline = false
    if m.di and same_device(name, m.di) then known_device = true end
  elseif kind == 'c:' then
    baseline = false
    if name == m.co then known_country = true end
  end
end
if not baseline and m.di and not known_device then flags = add_flag(flags, 'new-device') end
if not baseline and m.co and not known_country then flags = add_flag(flags, 'new-country') end
if m.lt then
  local lat, lon, t = last_loc(hist)
  if t and t >= since and impossible(lat, lon, t, tonumber(m.lt), tonumber(m.ln), now) then
    flags = add_flag(flags, 'impossible-travel')
  end
end
if m.co then
  for _, a in ipairs(active) do
    if a.m.ea == nil and a.m.co and a.m.co ~= m.co then
      flags = add_flag(flags, 'concurrent-countries')
      break
    end
  end
end
if flags ~= '' then
  m.rk = flags
  redis.call('HSET', KEYS[1], 'rk', flags)
end
if m.di then redis.call('ZADD', KEYS[2], now, 'd:' .. m.di) end
if m.co then redis.call('ZADD', KEYS[2], now, 'c:' .. m.co) end
if m.lt then record_location(KEYS[2], hist, m.lt, m.ln, now) end
-- no login event: the session is its own record of its sign-in (Events)
for f in string.gmatch(flags, '[^,]+') do
  add_event(KEYS[3], now, retention, event_fields('risk', now, id, m, f, ''))
end
end

local exp = expires_at(m, lifetime, idle)
redis.call('PEXPIREAT', KEYS[1], exp + retention)
redis.call('ZADD', KEYS[2], now, id)
extend(KEYS[2], math.max(lifetime, exp - now) + retention)
out[3] = flags
local others = 0
for _, a in ipairs(active) do
  if a.m.ea == nil then others = others + 1 end
end
out[4] = others
return out
`)

// discardScript: KEYS session, user index, then the key of every session
// in the index. ARGV session key prefix, id, tombstone TTL (ms).
// It undoes a sign-in whose outcome is unknown: the session goes, and a
// tombstone in its place makes a createScript still on its way refuse
// (SESSIONEXISTS). Returns {id, flat…} of the sessions that sign-in ended
// for the limit (they stay ended: the caller records them).
var discardScript = redis.NewScript(luaPrelude + `
local skp, id = ARGV[1], ARGV[2]
local ids = read_index(KEYS[2])
if not all_declared(ids, skp, 3) then return redis.error_reply(stale_keys) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'dx', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[2], id)
local out = {}
for _, sid in ipairs(ids) do
  if sid ~= id then
    local flat = redis.call('HGETALL', skp .. sid)
    if hmap(flat).eb == id then
      out[#out + 1] = sid
      out[#out + 1] = flat
    end
  end
end
return out
`)

// endScript: KEYS session, the owner's events, the stats hash. ARGV events key prefix, id,
// at, reason, actor, lifetime, idle, retention. Returns the ended
// session's flat hash, or nothing when there is no active session.
var endScript = redis.NewScript(luaPrelude + `
STATS = KEYS[#KEYS]
local m = hmap(redis.call('HGETALL', KEYS[1]))
local at, lifetime, idle = tonumber(ARGV[3]), tonumber(ARGV[6]), tonumber(ARGV[7])
if not is_active(m, at, lifetime, idle) or KEYS[2] ~= ARGV[1] .. m.u then return false end
end_one(KEYS[1], ARGV[2], m, at, ARGV[4], ARGV[5], tonumber(ARGV[8]), KEYS[2])
return flatten(m)
`)

// stepUpScript: KEYS session, the owner's events. ARGV events key prefix,
// id, at, lifetime, idle, retention, method, the provider's sid (empty
// keeps it). The twin of stepUp (Go): authenticated_at (kept only when it
// differs from the creation), no risk flags, the step-up's place from the
// session's current one, the provider's sid, and a step_up event. Returns the session's flat hash as updated, or nothing when there
// is no active session.
var stepUpScript = redis.NewScript(luaPrelude + `
local m = hmap(redis.call('HGETALL', KEYS[1]))
local at, lifetime, idle = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if not is_active(m, at, lifetime, idle) or KEYS[2] ~= ARGV[1] .. m.u then return false end
if ARGV[3] == m.ca then
  m.aa = nil
  redis.call('HDEL', KEYS[1], 'aa')
else
  m.aa = ARGV[3]
  redis.call('HSET', KEYS[1], 'aa', ARGV[3])
end
if ARGV[8] ~= '' then
  m.sid = ARGV[8]
  redis.call('HSET', KEYS[1], 'sid', ARGV[8])
end
m.rk = nil
redis.call('HDEL', KEYS[1], 'rk')
m.sip = m.ip or ''
redis.call('HSET', KEYS[1], 'sip', m.sip)
if m.co and m.co ~= '' then
  m.sco = m.co
  redis.call('HSET', KEYS[1], 'sco', m.sco)
else
  m.sco = nil
  redis.call('HDEL', KEYS[1], 'sco')
end
add_event(KEYS[2], at, tonumber(ARGV[6]), event_fields('step_up', at, ARGV[2], m, ARGV[7], ''))
return flatten(m)
`)

// endUserScript: KEYS user index, events, then the key of every session
// in the index, then the stats hash. ARGV session key prefix, except, at, reason, actor,
// lifetime, idle, retention. Returns {id, flat…}.
var endUserScript = redis.NewScript(luaPrelude + `
STATS = KEYS[#KEYS]
local skp, except = ARGV[1], ARGV[2]
local at, lifetime, idle = tonumber(ARGV[3]), tonumber(ARGV[6]), tonumber(ARGV[7])
local out = {}
local ended = {}
local ids = read_index(KEYS[1])
if not all_declared(ids, skp, 3) then return redis.error_reply(stale_keys) end
for _, sid in ipairs(ids) do
  local m = hmap(redis.call('HGETALL', skp .. sid))
  if m.ca == nil then
    redis.call('ZREM', KEYS[1], sid)
  elseif is_active(m, at, lifetime, idle) then
    -- the tokens the session kept made stay with it (madeBy in Go)
    if sid ~= except and not (except ~= '' and m.kd == 'token' and m.pa == except) then
      end_one(skp .. sid, sid, m, at, ARGV[4], ARGV[5], tonumber(ARGV[8]), KEYS[2])
      ended[#ended + 1] = ended_entry(sid, m, lifetime, idle)
      out[#out + 1] = sid
      out[#out + 1] = flatten(m)
    end
  else
    ended[#ended + 1] = ended_entry(sid, m, lifetime, idle)
  end
end
cap_ended(KEYS[1], KEYS[2], skp, ended, tonumber(ARGV[8]))
return out
`)

// endWithTokensScript: KEYS session, the owner's user index, events, then
// the key of every session in the index, then the stats hash. ARGV session key prefix, id, at,
// reason, actor, lifetime, idle, retention, events key prefix. It ends the
// session when active and every active API token it made (pa). Returns
// {id, flat…} of those it ended, the session first.
var endWithTokensScript = redis.NewScript(luaPrelude + `
STATS = KEYS[#KEYS]
local skp, id = ARGV[1], ARGV[2]
local at, lifetime, idle, retention = tonumber(ARGV[3]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local ids = read_index(KEYS[2])
if not all_declared(ids, skp, 4) then return redis.error_reply(stale_keys) end
local pm = hmap(redis.call('HGETALL', KEYS[1]))
if pm.ca == nil or KEYS[3] ~= ARGV[9] .. pm.u then return {} end
local out, ended = {}, {}
if is_active(pm, at, lifetime, idle) then
  end_one(KEYS[1], id, pm, at, ARGV[4], ARGV[5], retention, KEYS[3])
  out[1], out[2] = id, flatten(pm)
end
for _, sid in ipairs(ids) do
  local m = pm
  if sid ~= id then m = hmap(redis.call('HGETALL', skp .. sid)) end
  if m.ca == nil then
    redis.call('ZREM', KEYS[2], sid)
  elseif is_active(m, at, lifetime, idle) then
    if m.kd == 'token' and m.pa == id then
      end_one(skp .. sid, sid, m, at, ARGV[4], ARGV[5], retention, KEYS[3])
      ended[#ended + 1] = ended_entry(sid, m, lifetime, idle)
      out[#out + 1] = sid
      out[#out + 1] = flatten(m)
    end
  else
    ended[#ended + 1] = ended_entry(sid, m, lifetime, idle)
  end
end
if #out > 0 then cap_ended(KEYS[2], KEYS[3], skp, ended, retention) end
return out
`)

// listScript: KEYS user index, events, then the key of every session in
// it. ARGV session key prefix, then optionally now, lifetime, idle,
// retention. Returns {id, flat…}; prunes ids whose session has expired
// from the store, and, given the policy, the ended sessions past the cap
// (an End since the last sign-in may have added one).
var listScript = redis.NewScript(luaPrelude + `
local skp, now, lifetime, idle = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local found, ended = {}, {}
local ids = read_index(KEYS[1])
if not all_declared(ids, skp, 3) then return redis.error_reply(stale_keys) end
for _, sid in ipairs(ids) do
  local flat = redis.call('HGETALL', skp .. sid)
  if #flat == 0 then
    redis.call('ZREM', KEYS[1], sid)
  else
    found[#found + 1] = {sid, flat}
    local m = hmap(flat)
    if now and not is_active(m, now, lifetime, idle) then
      ended[#ended + 1] = ended_entry(sid, m, lifetime, idle)
    end
  end
end
local dropped = cap_ended(KEYS[1], KEYS[2], skp, ended, tonumber(ARGV[5]))
local out = {}
for _, f in ipairs(found) do
  if not dropped[f[1]] then
    out[#out + 1] = f[1]
    out[#out + 1] = f[2]
  end
end
return out
`)

// sightScript: KEYS session, the owner's user index and events, the stats
// hash. ARGV user
// index key prefix, events key prefix,
// id, at, lifetime, idle, retention, ip, country, city, lat, lon (lat and
// lon empty when unknown). Returns the session's flat hash as updated, or
// nothing when it is no longer active.
var sightScript = redis.NewScript(luaPrelude + `
STATS = KEYS[#KEYS]
local m = hmap(redis.call('HGETALL', KEYS[1]))
local id, at = ARGV[3], tonumber(ARGV[4])
local lifetime, idle, retention = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if not is_active(m, at, lifetime, idle) then return false end
local ukey, evkey = KEYS[2], KEYS[3]
if ukey ~= ARGV[1] .. m.u or evkey ~= ARGV[2] .. m.u then return false end
local ip, country, city, lat, lon = ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local prev_country = m.co
local raised = false
if lat ~= '' then
  local _, hist = read_index(ukey)
  local plat, plon, t = last_loc(hist)
  if t and t >= at - retention and not has_flag(m.rk, 'impossible-travel') and
     impossible(plat, plon, t, tonumber(lat), tonumber(lon), at) then
    m.rk = add_flag(m.rk, 'impossible-travel')
    raised = true
  end
  record_location(ukey, hist, lat, lon, at)
end
if country ~= '' then redis.call('ZADD', ukey, at, 'c:' .. country) end
if lat ~= '' or country ~= '' then extend(ukey, retention) end

keep_login_ip(KEYS[1], m, ip)
if m.lco == nil and (m.co or '') ~= country then
  m.lco = m.co or ''
  redis.call('HSET', KEYS[1], 'lco', m.lco)
end
if m.lci == nil and (m.ci or '') ~= city then
  m.lci = m.ci or ''
  redis.call('HSET', KEYS[1], 'lci', m.lci)
end
m.ip = ip
redis.call('HSET', KEYS[1], 'ip', ip)
for _, kv in ipairs({{'co', country}, {'ci', city}, {'lt', lat}, {'ln', lon}}) do
  if kv[2] == '' then
    m[kv[1]] = nil
    redis.call('HDEL', KEYS[1], kv[1])
  else
    m[kv[1]] = kv[2]
    redis.call('HSET', KEYS[1], kv[1], kv[2])
  end
end
if raised then redis.call('HSET', KEYS[1], 'rk', m.rk) end
add_event(evkey, at, retention, event_fields('ip_change', at, id, m, '', ''))
if prev_country and country ~= '' and prev_country ~= country then
  add_event(evkey, at, retention, event_fields('country_change', at, id, m, '', ''))
end
if raised then
  add_event(evkey, at, retention, event_fields('risk', at, id, m, 'impossible-travel', ''))
end
return flatten(m)
`)

// markCheckedScript: KEYS session. ARGV the CheckedAt (ck) the caller
// read (ms, 0 for none), the new one, then the new sealed tokens as
// field/value pairs (tk, tk~1…; none to keep them). Returns 1 when it
// wrote, 0 when ck had moved on, -1 when there is no active session.
var markCheckedScript = redis.NewScript(luaPrelude + `
local flat = redis.call('HGETALL', KEYS[1])
local m = hmap(flat)
if m.ca == nil or m.u == nil or m.ea then return -1 end
if (m.ck or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'ck', ARGV[2])
if #ARGV > 2 then
  -- the old chunks go first: the new text may have fewer
  for k, _ in pairs(m) do
    if string.sub(k, 1, 3) == 'tk~' then redis.call('HDEL', KEYS[1], k) end
  end
  local f = {}
  for i = 3, #ARGV do f[#f + 1] = ARGV[i] end
  redis.call('HSET', KEYS[1], unpack(f))
end
return 1
`)

// setRolesScript: KEYS session. ARGV the new roles as field/value pairs
// (ro, ro~1…; none to remove them). Returns the session's fields, or nil
// when there is no active session.
var setRolesScript = redis.NewScript(luaPrelude + `
local m = hmap(redis.call('HGETALL', KEYS[1]))
if m.ca == nil or m.u == nil or m.ea then return false end
for k, _ in pairs(m) do
  if k == 'ro' or string.sub(k, 1, 3) == 'ro~' then redis.call('HDEL', KEYS[1], k) end
end
if #ARGV > 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end
return redis.call('HGETALL', KEYS[1])
`)

// hitScript: KEYS counter. ARGV window (ms). Returns {count, ms left}.
var hitScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`)

// refundScript: KEYS counter. Takes one back, never below zero; DECR
// keeps the window's expiry, and a counter that expired is not made
// again (EXISTS first, as the ACL has no GET).
var refundScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('DECR', KEYS[1]) < 0 then redis.call('INCR', KEYS[1]) end
return 0
`)

// recordScript: KEYS events list, the stats hash. ARGV at, retention, the
// event's user, then its values in eventValues order.
var recordScript = redis.NewScript(luaPrelude + `
STATS = KEYS[2]
local values = {}
for i = 4, #ARGV do values[#values + 1] = ARGV[i] end
values.u = ARGV[3]
add_event(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), values)
return 1
`)

// The notification outbox: a stream read by a consumer group (each entry
// goes to one gateway; entries survive restarts) and a sorted set of
// retries by due time, both under one hash tag.

// enqueueScript: KEYS stream, retries. ARGV entry, cap, ttl (ms). The
// stream holds only undelivered notices (a delivered one is deleted), so
// with the retries it is what the cap bounds; a full outbox refuses the
// new notice (OUTBOXFULL) and never trims one that waits.
var enqueueScript = redis.NewScript(`
if redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then
  return redis.error_reply('OUTBOXFULL the notification queue is full')
end
redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// promoteScript: KEYS stream, retries. ARGV now (ms), max, ttl (ms).
// Moves due retries into the stream.
var promoteScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, e in ipairs(due) do
  redis.call('XADD', KEYS[1], '*', 'e', e)
  redis.call('ZREM', KEYS[2], e)
end
if #due > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return #due
`)

// ackScript: KEYS stream. ARGV group, id.
var ackScript = redis.NewScript(`
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
`)

// retryScript: KEYS stream, retries. ARGV group, id, entry, due (ms), ttl (ms).
var retryScript = redis.NewScript(`
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
`)

// stashScript: KEYS record. ARGV value, ttl (ms). A hash rather than a
// string so that the gateway's Redis user needs no command beyond those
// it already has (SECURITY.md's ACL line).
var stashScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// linkScript: KEYS set. ARGV member, until (ms), now (ms), cap. A sorted
// set scored by each member's time: passed members go, then the ones
// that expire first while the set is over cap; the key lives as long as
// its last member.
var linkScript = redis.NewScript(`
local keep = tonumber(ARGV[2])
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not old) or tonumber(old) < keep then
  redis.call('ZADD', KEYS[1], keep, ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if over > 0 then
  redis.call('ZREM', KEYS[1], unpack(redis.call('ZRANGE', KEYS[1], 0, over - 1)))
end
local last = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[1], last[2]) end
return 1
`)

// takeScript: KEYS record. Returns its value and deletes it, or nil.
var takeScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], 'v')
if v then redis.call('DEL', KEYS[1]) end
return v
`)
