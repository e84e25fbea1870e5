"""The Lua scripts behind agent sessions in the Redis store, each atomic in Redis.

Keys (after the store's prefix), for the session S of the key K:

- `session:<len(K)>:K:S` (a hash): `key`, `session`, `first`, `last` (epoch seconds as the
  gateway's clock wrote them), `calls`, `tokens`, `cost` (nano-USD), `status` (active or
  stopped), `reason`, `evidence`, `stopped_at`, `trace` (the loop detector's state, JSON),
  `version` (bumped by every trace write and by resume: the compare-and-set token),
  `verdicts` (JSON list of the latest loop verdicts), `loops` (calls judged looping).
- the same name + `:min` (a sorted set): the calls admitted in the last minute, by time.
- `sessions` (a sorted set): every live session, member `[K, S]` as JSON, by last call, so
  listing needs no SCAN. Entries idle past the TTL are trimmed on each admission.

Every session key expires `idle_ttl` after the session's latest call (PEXPIRE), so idle
sessions, stopped ones included, go away by themselves. The hash also holds `expires` by the
gateway's clock (which reads compare with "now", like every other script here), so a
session is gone at the same moment on every backend, whatever Redis's own clock says.

The counters (`calls`, `tokens`, `cost`) only ever move by HINCRBY, so calls of one session
on several replicas add up exactly. The trace is written by compare-and-set on `version`: a
replica whose read is stale gets the current record back, runs the detector again on it and
retries, so no replica's observation is lost or applied to a trace it did not see.
"""

# KEYS: hash, minute set, index. ARGV: now, key name, session, idle TTL ms, idle TTL s,
# max calls, max tokens, max cost nanos, max duration s, calls per minute ('' when unset),
# unique member, index member.
# Returns {refused limit or '', retry after s, calls in the last minute, the hash as HGETALL}.
ADMIT = r"""
local h, m, idx = KEYS[1], KEYS[2], KEYS[3]
local now = tonumber(ARGV[1])
local function cap(i) if ARGV[i] == '' then return nil end return tonumber(ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', idx, '-inf', now - tonumber(ARGV[5]))
local expires = tonumber(redis.call('HGET', h, 'expires') or 'inf')
if expires <= now then redis.call('DEL', h, m) end  -- idle past its TTL by the gateway's clock: a new session
redis.call('ZREMRANGEBYSCORE', m, '-inf', now - 60)
local f = redis.call('HMGET', h, 'first', 'calls', 'tokens', 'cost', 'status')
local first = tonumber(f[1])
local calls, tokens, cost = tonumber(f[2] or '0'), tonumber(f[3] or '0'), tonumber(f[4] or '0')
local minute = redis.call('ZCARD', m)
local refused, retry = '', 0
local max_calls, max_tokens, max_cost, max_duration, per_minute = cap(6), cap(7), cap(8), cap(9), cap(10)
if f[5] == 'stopped' then refused = 'stopped'
elseif max_calls and calls >= max_calls then refused = 'max_calls'
elseif max_tokens and tokens >= max_tokens then refused = 'max_tokens'
elseif max_cost and cost >= max_cost then refused = 'max_cost_usd'
elseif max_duration and first and now - first >= max_duration then refused = 'max_duration_s'
elseif per_minute and minute >= per_minute then
  refused = 'calls_per_minute'
  local oldest = redis.call('ZRANGE', m, minute - per_minute, minute - per_minute, 'WITHSCORES')
  retry = tonumber(oldest[2]) + 60 - now
end
if not first then
  redis.call('HSET', h, 'key', ARGV[2], 'session', ARGV[3], 'first', ARGV[1], 'status', 'active', 'version', '0')
end
if refused == '' then
  redis.call('HINCRBY', h, 'calls', 1)
  redis.call('ZADD', m, now, ARGV[11])
  minute = minute + 1
end
redis.call('HSET', h, 'last', ARGV[1], 'expires', string.format('%.17g', now + tonumber(ARGV[5])))
redis.call('PEXPIRE', h, ARGV[4])
redis.call('PEXPIRE', m, ARGV[4])
redis.call('ZADD', idx, now, ARGV[12])
return {refused, string.format('%.17g', retry), minute, redis.call('HGETALL', h)}
"""

# KEYS: hash. ARGV: expected version, trace JSON, verdicts JSON, loops, then for a stop:
# reason, evidence, stopped at ('' when not stopping).
# Returns {1, new version} when written, {0, the hash} when the version moved, {-1} when gone.
OBSERVE = r"""
local h = KEYS[1]
if redis.call('EXISTS', h) == 0 then return {-1} end
local version = tonumber(redis.call('HGET', h, 'version') or '0')
if version ~= tonumber(ARGV[1]) then return {0, redis.call('HGETALL', h)} end
redis.call('HSET', h, 'trace', ARGV[2], 'verdicts', ARGV[3], 'loops', ARGV[4], 'version', version + 1)
if ARGV[7] ~= '' and redis.call('HGET', h, 'status') ~= 'stopped' then
  redis.call('HSET', h, 'status', 'stopped', 'reason', ARGV[5], 'evidence', ARGV[6], 'stopped_at', ARGV[7])
end
return {1, version + 1}
"""

# KEYS: hash, its last minute's calls. ARGV: tokens, cost nanos, 1 to take the call back out
# of `calls` and of the last minute's (it never reached an upstream) else 0. Does nothing to a
# session that is gone.
SETTLE = r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] ~= '0' then redis.call('HINCRBY', KEYS[1], 'tokens', ARGV[1]) end
if ARGV[2] ~= '0' then redis.call('HINCRBY', KEYS[1], 'cost', ARGV[2]) end
if ARGV[3] == '1' then
  redis.call('HINCRBY', KEYS[1], 'calls', -1)
  redis.call('ZPOPMAX', KEYS[2])  -- and out of the last minute's calls (the newest: the same count)
end
return 1
"""

# KEYS: hash. ARGV: 'stop' or 'resume', reason, evidence, now, the trace after a resume
# ('' for none). Stop keeps the trace; resume replaces it (and bumps the version, so a trace
# a replica is about to write from before the resume is refused). Returns the hash, or {}
# when gone.
SET_STATUS = r"""
local h = KEYS[1]
if redis.call('EXISTS', h) == 0 then return {} end
if ARGV[1] == 'stop' then
  redis.call('HSET', h, 'status', 'stopped', 'reason', ARGV[2], 'evidence', ARGV[3], 'stopped_at', ARGV[4])
else
  redis.call('HSET', h, 'status', 'active')
  redis.call('HDEL', h, 'reason', 'evidence', 'stopped_at', 'trace')
  if ARGV[5] ~= '' then redis.call('HSET', h, 'trace', ARGV[5]) end
  redis.call('HINCRBY', h, 'version', 1)
end
return redis.call('HGETALL', h)
"""
