package session

import "github.com/redis/go-redis/v9"

// Key layout, all under the user's hash tag so that every script below
// touches one cluster slot:
//
//	<prefix>{<tag>}:s:<id>    hash: one session
//	<prefix>{<tag>}:u:<user>  sorted set: the user's session ids by last activity
//	<prefix>{<tag>}:e:<user>  stream: the user's audit events
//
// Every key gets a TTL: a session expires retention after it ends or would
// expire, the index and the stream live as long as their longest member.
//
// Times are Unix milliseconds from the gateway's clock, passed in as ARGV,
// so that a test can move time and all gateways apply one rule.

// luaPrelude is shared by the scripts; Redis runs each script alone, so
// it is prepended to each.
const luaPrelude = `
local function hmap(flat)
  local m = {}
  for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
  return m
end

local function expires_at(m, lifetime, idle)
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

-- add_event appends to a user's stream with an id from our clock, kept
-- monotonic, trims what is older than retention and refreshes the TTL.
local function add_event(key, at, retention, fields)
  local ms = at
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if #last > 0 then
    local lms = tonumber(string.match(last[1][1], '^(%d+)'))
    if lms > ms then ms = lms end
  end
  redis.call('XADD', key, 'MAXLEN', '~', ` + maxEventsPerUserLua + `, ms .. '-*', unpack(fields))
  redis.call('XTRIM', key, 'MINID', '~', at - retention)
  extend(key, retention)
end

local function event_fields(typ, at, id, m, reason, actor)
  return {'t', typ, 'at', at, 'u', m.u, 'sid', id, 'ip', m.ip or '', 'co', m.co or '',
    'ci', m.ci or '', 'dn', m.dn or '', 'br', m.br or '', 'os', m.os or '',
    'di', m.di or '', 'rs', reason, 'ac', actor}
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

local function flatten(m)
  local out = {}
  for k, v in pairs(m) do out[#out + 1] = k; out[#out + 1] = v end
  return out
end

-- is_active: not ended and not out of time at now
local function is_active(m, now, lifetime, idle)
  return m.ca ~= nil and m.ea == nil and now < expires_at(m, lifetime, idle)
end
`

const maxEventsPerUserLua = "1000" // = maxEventsPerUser

// validateScript: KEYS session. ARGV hash, now, lifetime, idle, touch, ip,
// retention, id, user index key prefix (the user id is in the hash).
// Returns {0} unknown, {1, flat, touched} valid, {2, flat} expired (now
// ended), {3, flat} ended.
var validateScript = redis.NewScript(luaPrelude + `
local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then return {0} end
local m = hmap(flat)
if m.th ~= ARGV[1] then return {0} end
if m.ea then return {3, flat} end
local now, lifetime, idle = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local touch, ip, retention = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local exp = expires_at(m, lifetime, idle)
if now >= exp then
  redis.call('HSET', KEYS[1], 'ea', exp, 'er', 'expired')
  redis.call('PEXPIREAT', KEYS[1], exp + retention)
  return {2, flat}
end
if m.ip ~= ip or now - tonumber(m.la) >= touch then
  redis.call('HSET', KEYS[1], 'la', now, 'ip', ip)
  m.la = tostring(now)
  redis.call('PEXPIREAT', KEYS[1], expires_at(m, lifetime, idle) + retention)
  local ukey = ARGV[9] .. m.u
  redis.call('ZADD', ukey, now, ARGV[8])
  extend(ukey, lifetime + retention)
  return {1, flat, 1}
end
return {1, flat, 0}
`)

// createScript: KEYS session, user index, events.
// ARGV session key prefix, id, now, lifetime, idle, retention, max, mode,
// then the session's field/value pairs.
// Returns {-1} when mode reject refuses, else {1, created_at, id1, flat1,
// id2, flat2…}: the creation time used (later than any other session of
// the user) and the sessions the limit ended.
var createScript = redis.NewScript(luaPrelude + `
local skp, id = ARGV[1], ARGV[2]
local now, lifetime, idle = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local retention, max, mode = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local active = {}
local newest = 0
for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local m = hmap(redis.call('HGETALL', skp .. sid))
  if m.ca == nil then
    redis.call('ZREM', KEYS[2], sid)
  else
    if tonumber(m.ca) > newest then newest = tonumber(m.ca) end
    if is_active(m, now, lifetime, idle) then
      active[#active + 1] = {id = sid, ca = tonumber(m.ca), la = tonumber(m.la), m = m}
    end
  end
end
local out = {1, now}
if max > 0 and #active >= max then
  if mode == 'reject' then return {-1} end
  table.sort(active, function(a, b)
    if mode == 'least_recent' and a.la ~= b.la then return a.la < b.la end
    if a.ca ~= b.ca then return a.ca < b.ca end
    return a.id < b.id
  end)
  for i = 1, #active - max + 1 do
    local a = active[i]
    end_one(skp .. a.id, a.id, a.m, now, 'limit', 'limit', retention, KEYS[3])
    out[#out + 1] = a.id
    out[#out + 1] = flatten(a.m)
  end
end
-- sign-ins of one user are strictly ordered, so "oldest" is never a tie
if now <= newest then now = newest + 1; out[2] = now end
local fields = {}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
local nowstr = string.format('%d', now)
for i = 1, #fields, 2 do
  if fields[i] == 'ca' or fields[i] == 'la' then fields[i + 1] = nowstr end
end
redis.call('HSET', KEYS[1], unpack(fields))
local m = hmap(fields)
redis.call('PEXPIREAT', KEYS[1], expires_at(m, lifetime, idle) + retention)
redis.call('ZADD', KEYS[2], now, id)
extend(KEYS[2], lifetime + retention)
add_event(KEYS[3], now, retention, event_fields('login', now, id, m, '', ''))
return out
`)

// endScript: KEYS session. ARGV events key prefix, id, at, reason, actor,
// lifetime, idle, retention. Returns the ended session's flat hash, or
// nothing when there is no active session.
var endScript = redis.NewScript(luaPrelude + `
local m = hmap(redis.call('HGETALL', KEYS[1]))
local at, lifetime, idle = tonumber(ARGV[3]), tonumber(ARGV[6]), tonumber(ARGV[7])
if not is_active(m, at, lifetime, idle) then return false end
end_one(KEYS[1], ARGV[2], m, at, ARGV[4], ARGV[5], tonumber(ARGV[8]), ARGV[1] .. m.u)
return flatten(m)
`)

// endUserScript: KEYS user index, events. ARGV session key prefix, except,
// at, reason, actor, lifetime, idle, retention. Returns {id, flat…}.
var endUserScript = redis.NewScript(luaPrelude + `
local skp, except = ARGV[1], ARGV[2]
local at, lifetime, idle = tonumber(ARGV[3]), tonumber(ARGV[6]), tonumber(ARGV[7])
local out = {}
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local m = hmap(redis.call('HGETALL', skp .. sid))
  if m.ca == nil then
    redis.call('ZREM', KEYS[1], sid)
  elseif sid ~= except and is_active(m, at, lifetime, idle) then
    end_one(skp .. sid, sid, m, at, ARGV[4], ARGV[5], tonumber(ARGV[8]), KEYS[2])
    out[#out + 1] = sid
    out[#out + 1] = flatten(m)
  end
end
return out
`)

// listScript: KEYS user index. ARGV session key prefix.
// Returns {id, flat…}, newest activity first, and prunes ids whose
// session has expired from the store.
var listScript = redis.NewScript(`
local out = {}
for _, sid in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local flat = redis.call('HGETALL', ARGV[1] .. sid)
  if #flat == 0 then
    redis.call('ZREM', KEYS[1], sid)
  else
    out[#out + 1] = sid
    out[#out + 1] = flat
  end
end
return out
`)
