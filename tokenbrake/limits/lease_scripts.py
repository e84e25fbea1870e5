"""The Lua scripts behind a gateway's leases on Redis (redis_leases.py).

Keys (after the prefix): `leases:reservations`, a sorted set of the open reservations' request
ids by the time their gateway's lease on them lapses; `unseen`, a list of the reservations
charged because their gateway stopped renewing them, for a live gateway to record in its
ledger; `alive`, set once the shared state is known to hold the ledger's spend (gone: Redis
lost its data).
"""

from tokenbrake.limits.scripts import PRELUDE

# Charges every reservation whose lease lapsed at its reserved amount (never releases it),
# and queues it for the ledger. KEYS: leases:reservations, unseen. ARGV: now, prefix, keep-after
# ms, the most to take. Returns how many it charged.
SWEEP = PRELUDE + r"""
local now, prefix, keep_after = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
for _, rid in ipairs(lapsed) do
  local reservation = prefix .. 'reservation:' .. rid
  local fields = redis.call('HMGET', reservation, 'amount', 'counters', 'note')
  if fields[2] then
    for _, counter in ipairs(cjson.decode(fields[2])) do
      local base, rolling, keep_until = counter[1], tonumber(counter[2]), counter[3]
      local held = redis.call('HGET', base, 'r:' .. rid)
      if held then
        redis.call('HDEL', base, 'r:' .. rid)
        redis.call('ZREM', base .. ':exp', rid)
        if held ~= '0' then
          redis.call('HINCRBY', base, 'reserved', '-' .. held)
          redis.call('HINCRBY', base, 'spent', held)
          if rolling > 0 then redis.call('ZADD', base .. ':log', now, held .. ':' .. rid) end
        end
      end
      if rolling > 0 then keep_until = now + rolling + keep_after / 1000 end
      if type(keep_until) == 'number' then keep(base, math.max((keep_until - now) * 1000, 1000)) end
    end
    redis.call('RPUSH', KEYS[2], cjson.encode({rid, fields[1], fields[3] or '', fields[2]}))
    redis.call('DEL', reservation)
  end
  redis.call('ZREM', KEYS[1], rid)
end
return #lapsed
"""

# Raises counters to the ledger's settled spend where they hold less (Redis restarted empty,
# or a failover lost writes). KEYS: counters. ARGV: now, then per counter: nanos, keep ms ('' for
# ever), the rolling window's charges as JSON [[at, nanos], ...] ('' for other windows).
# Returns how many counters it raised.
TAKE_SETTLED = PRELUDE + r"""
local now, raised = tonumber(ARGV[1]), 0
for i = 1, #KEYS do
  local base, nanos, keep_ms, log = KEYS[i], tonumber(ARGV[3 * i - 1]), ARGV[3 * i], ARGV[3 * i + 1]
  local spent = tonumber(redis.call('HGET', base, 'spent') or '0')
  if nanos > spent then
    raised = raised + 1
    redis.call('HSET', base, 'spent', int(nanos))
    if log ~= '' then
      redis.call('DEL', base .. ':log')
      for n, entry in ipairs(cjson.decode(log)) do
        redis.call('ZADD', base .. ':log', entry[1], int(entry[2]) .. ':ledger-' .. n)
      end
    end
    if keep_ms ~= '' then keep(base, tonumber(keep_ms)) end
  end
end
return raised
"""
