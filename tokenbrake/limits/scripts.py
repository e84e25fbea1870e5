"""The Lua scripts behind the Redis store: one per operation, each atomic in Redis.

Keys (after the configurable prefix):

- `budget:<counter key>:<window>` (a hash): `spent`, `reserved`, and `r:<request id>` = the
  nano-USD that request holds; `...:exp` (a sorted set): request id by reservation expiry;
  `...:log` (a sorted set, rolling windows only): settled spend, member `<amount>:<request
  id>` scored by its time.
- `reservation:<request id>` (a hash): `amount`, and `counters` = JSON list of [counter key,
  rolling seconds, keep-until epoch or null], which `settle` reads to know what to move.
- `rate:<key>` (a sorted set of hits, member `<amount>:<unique>` by time) and `rate:<key>:used`
  (a hash holding their sum); `slots:<key>` (a sorted set: request id by slot expiry).

"Now" is always an argument, from the gateway's clock, never Redis TIME: a test's fake clock
works, and replicas agree to within their clock skew. TTLs are relative (PEXPIRE), so they
hold whatever the clock says. Every integer a script writes goes through `int()`: Redis turns
a bare Lua number into text with 17 significant digits or an exponent, which HINCRBY rejects.

`settle` derives the counter keys from the reservation record instead of receiving them, so
the scripts need one Redis (or a primary with replicas), not Redis Cluster.
"""

PRELUDE = r"""
local function int(x) return string.format('%.0f', x) end

local function extend(key, ms)
  local current = redis.call('PTTL', key)
  if current == -1 or (current >= 0 and current < ms) then redis.call('PEXPIRE', key, int(ms)) end
end

local function amount_of(member) return tonumber(string.match(member, '^(%d+):')) end

-- Expired reservations leave `reserved` and are not spent; a rolling window's old spend
-- leaves `spent`.
local function reconcile(base, now, rolling)
  local expired = redis.call('ZRANGEBYSCORE', base .. ':exp', '-inf', now)
  if #expired > 0 then
    for _, rid in ipairs(expired) do
      local held = redis.call('HGET', base, 'r:' .. rid)
      if held then
        redis.call('HDEL', base, 'r:' .. rid)
        if held ~= '0' then redis.call('HINCRBY', base, 'reserved', '-' .. held) end
      end
    end
    redis.call('ZREMRANGEBYSCORE', base .. ':exp', '-inf', now)
  end
  if rolling > 0 then
    local old = redis.call('ZRANGEBYSCORE', base .. ':log', '-inf', now - rolling)
    if #old > 0 then
      local gone = 0
      for _, member in ipairs(old) do gone = gone + amount_of(member) end
      redis.call('HINCRBY', base, 'spent', int(-gone))
      redis.call('ZREMRANGEBYSCORE', base .. ':log', '-inf', now - rolling)
    end
  end
end

local function row(base, rolling)
  local values = redis.call('HMGET', base, 'spent', 'reserved')
  local oldest = ''
  if rolling > 0 then
    local first = redis.call('ZRANGE', base .. ':log', 0, 0, 'WITHSCORES')
    if #first > 0 then oldest = first[2] end
  end
  return {tonumber(values[1] or '0'), tonumber(values[2] or '0'), oldest}
end

local function keep(base, ms)
  extend(base, ms)
  extend(base .. ':exp', ms)
  extend(base .. ':log', ms)
end
"""

# KEYS: counter keys..., reservation key, the leases' sorted set. ARGV: now, request id, want,
# floor, expiry, reservation TTL ms, reservation counters JSON, then per counter: limit ('' if
# soft), rolling seconds (0 if not), keep ms ('' for ever); then the lease's end and the note
# (who the request is for, to record it should its gateway die; redis_leases.py).
# Returns: amount reserved (-1: refused), then per counter spent, reserved, oldest spend time.
RESERVE = PRELUDE + r"""
local n = #KEYS - 2
local reservation = KEYS[#KEYS - 1]
local now, rid = tonumber(ARGV[1]), ARGV[2]
local rows, head = {}, nil
for i = 1, n do
  local o = 8 + 3 * (i - 1)
  local rolling = tonumber(ARGV[o + 1])
  reconcile(KEYS[i], now, rolling)
  rows[i] = row(KEYS[i], rolling)
  if ARGV[o] ~= '' then
    local room = tonumber(ARGV[o]) - rows[i][1] - rows[i][2]
    if head == nil or room < head then head = room end
  end
end
local amount = tonumber(redis.call('HGET', reservation, 'amount') or '-1')
if amount < 0 then
  local want, floor = tonumber(ARGV[3]), tonumber(ARGV[4])
  if head == nil or want <= head then amount = want
  elseif head >= floor and head > 0 then amount = head end
  if amount >= 0 then
    for i = 1, n do
      local base, o = KEYS[i], 8 + 3 * (i - 1)
      redis.call('HINCRBY', base, 'reserved', int(amount))
      redis.call('HSET', base, 'r:' .. rid, int(amount))
      redis.call('ZADD', base .. ':exp', ARGV[5], rid)
      if ARGV[o + 2] ~= '' then keep(base, tonumber(ARGV[o + 2])) end
      rows[i][2] = rows[i][2] + amount
    end
    redis.call('HSET', reservation, 'amount', int(amount), 'counters', ARGV[7], 'note', ARGV[9 + 3 * n])
    redis.call('PEXPIRE', reservation, ARGV[6])
    redis.call('ZADD', KEYS[#KEYS], ARGV[8 + 3 * n], rid)
    extend(KEYS[#KEYS], tonumber(ARGV[6]))
  end
end
local reply = {amount}
for i = 1, n do
  reply[#reply + 1] = rows[i][1]
  reply[#reply + 1] = rows[i][2]
  reply[#reply + 1] = rows[i][3]
end
return reply
"""

# KEYS: reservation key, the leases' sorted set. ARGV: now, request id, actual cost, keep-after ms,
# and, for a reserve whose answer never came, a tombstone's life in ms (else '').
# Returns 1 if it settled an open reservation, 0 if there was none (already settled). With a
# tombstone, a reservation not there yet is refused when its RESERVE runs late (a Redis that was
# paused runs what it was sent once it resumes): it would otherwise be held by nobody.
SETTLE = PRELUDE + r"""
local raw = redis.call('HGET', KEYS[1], 'counters')
if not raw then
  if ARGV[5] and ARGV[5] ~= '' then
    redis.call('HSET', KEYS[1], 'amount', 0, 'counters', '[]')
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
  end
  return 0
end
local now, rid, actual, keep_after = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
for _, counter in ipairs(cjson.decode(raw)) do
  local base, rolling, keep_until = counter[1], tonumber(counter[2]), counter[3]
  local held = redis.call('HGET', base, 'r:' .. rid)
  if held then  -- else it expired and was reconciled already: the cost still counts
    redis.call('HDEL', base, 'r:' .. rid)
    redis.call('ZREM', base .. ':exp', rid)
    if held ~= '0' then redis.call('HINCRBY', base, 'reserved', '-' .. held) end
  end
  if actual ~= '0' then
    redis.call('HINCRBY', base, 'spent', actual)
    if rolling > 0 then redis.call('ZADD', base .. ':log', now, actual .. ':' .. rid) end
  end
  if rolling > 0 then keep_until = now + rolling + keep_after / 1000 end
  if type(keep_until) == 'number' then keep(base, math.max((keep_until - now) * 1000, 1000)) end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], rid)
return 1
"""

# KEYS: counter keys. ARGV: now, then per counter its rolling seconds.
# Returns per counter spent, reserved, oldest spend time.
STATUS = PRELUDE + r"""
local now = tonumber(ARGV[1])
local reply = {}
for i = 1, #KEYS do
  local rolling = tonumber(ARGV[i + 1])
  reconcile(KEYS[i], now, rolling)
  local r = row(KEYS[i], rolling)
  reply[#reply + 1] = r[1]
  reply[#reply + 1] = r[2]
  reply[#reply + 1] = r[3]
end
return reply
"""

# Rate windows and concurrency slots, for ADMIT.
RATES = r"""
-- One hit of `amount` on the sliding window `hits` (its sum kept in `sums`). Returns
-- allowed (1/0), remaining, retry after (-1: never fits), seconds until empty.
local function rate_hit(hits, sums, now, limit, window, amount, member)
  local used = tonumber(redis.call('HGET', sums, 'used') or '0')
  local old = redis.call('ZRANGEBYSCORE', hits, '-inf', now - window)
  if #old > 0 then
    for _, m in ipairs(old) do used = used - amount_of(m) end
    redis.call('ZREMRANGEBYSCORE', hits, '-inf', now - window)
    redis.call('HSET', sums, 'used', int(used))
  end
  local allowed, retry = 0, 0
  if used + amount <= limit then
    allowed, used = 1, used + amount
    redis.call('ZADD', hits, now, amount .. ':' .. member)
    redis.call('HSET', sums, 'used', int(used))
    redis.call('PEXPIRE', hits, int(window * 1000 + 1000))
    redis.call('PEXPIRE', sums, int(window * 1000 + 1000))
  elseif amount > limit then
    retry = -1
  else
    local need, freed = used + amount - limit, 0
    local entries = redis.call('ZRANGE', hits, 0, -1, 'WITHSCORES')
    for i = 1, #entries, 2 do
      freed = freed + amount_of(entries[i])
      if freed >= need then
        retry = tonumber(entries[i + 1]) + window - now
        break
      end
    end
  end
  local reset = 0
  local newest = redis.call('ZRANGE', hits, -1, -1, 'WITHSCORES')
  if #newest > 0 then reset = tonumber(newest[2]) + window - now end
  return {allowed, int(limit - used), string.format('%.17g', retry), string.format('%.17g', reset)}
end

-- A slot of `slots` for `rid` until `expiry`: 1 if held, 0 if all `limit` are taken.
local function take_slot(slots, now, limit, rid, expiry, ttl_ms)
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
  if not redis.call('ZSCORE', slots, rid) and redis.call('ZCARD', slots) >= limit then
    return 0
  end
  redis.call('ZADD', slots, expiry, rid)
  extend(slots, ttl_ms)
  return 1
end
"""

# One request's rate limits in one round trip. KEYS: the slot sets, then (hits, used) per
# window. ARGV: now, request id, slot expiry, slot ttl ms, unique member suffix, the number of
# slot sets, then a limit per slot set, then (limit, window seconds, amount) per window.
# Slots are taken in order; the first that is full gives back those taken here and ends it
# (reply {'slot', its index}). Windows are hit in order; the first that refuses gives the
# slots back and ends it, the windows before it staying counted. Reply {'hits', then the
# four values of `rate_hit` per window hit}.
ADMIT = PRELUDE + RATES + r"""
local now, rid, expiry, ttl_ms, member = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local nslots = tonumber(ARGV[6])
for i = 1, nslots do
  if take_slot(KEYS[i], now, tonumber(ARGV[6 + i]), rid, expiry, ttl_ms) == 0 then
    for j = 1, i - 1 do redis.call('ZREM', KEYS[j], rid) end
    return {'slot', i}
  end
end
local reply = {'hits'}
local arg = 7 + nslots
for k = nslots + 1, #KEYS, 2 do
  local r = rate_hit(KEYS[k], KEYS[k + 1], now, tonumber(ARGV[arg]), tonumber(ARGV[arg + 1]), tonumber(ARGV[arg + 2]), member)
  for _, v in ipairs(r) do reply[#reply + 1] = v end
  arg = arg + 3
  if r[1] == 0 then
    for j = 1, nslots do redis.call('ZREM', KEYS[j], rid) end
    return reply
  end
end
return reply
"""

# KEYS: the mark. ARGV: now, expiry ('' for ever), TTL ms ('' for ever). Returns 1 for the
# first caller (the mark is set), 0 while an earlier mark holds. The expiry is kept in the
# value and compared with the gateway's clock; the TTL only lets Redis drop it afterwards.
MARK_ONCE = r"""
local held = redis.call('GET', KEYS[1])
if held and (held == 'never' or tonumber(held) > tonumber(ARGV[1])) then return 0 end
if ARGV[2] == '' then
  redis.call('SET', KEYS[1], 'never')
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
"""
