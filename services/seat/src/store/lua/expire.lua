-- ARGV[1]: now (ms). Expires the hold that lapsed first, one per call, via `release`.
local due = redis.call('ZRANGEBYSCORE', p .. 'expiries', '-inf', ARGV[1], 'LIMIT', 0, 1)
if #due == 0 then return false end
local out = release(due[1], 'expired')
if not out then
  redis.call('ZREM', p .. 'expiries', due[1])
  return '{"skip":true}'
end
return out
