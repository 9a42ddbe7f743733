-- Expires the hold that lapsed first by the store's clock, one per call, via `release`.
local now = string.format('%.0f', now_ms())
local due = redis.call('ZRANGEBYSCORE', p .. 'expiries', '-inf', now, 'LIMIT', 0, 1)
if #due == 0 then return false end
local out = release(due[1], 'expired')
if not out then
  redis.call('ZREM', p .. 'expiries', due[1])
  return '{"skip":true}'
end
return out
