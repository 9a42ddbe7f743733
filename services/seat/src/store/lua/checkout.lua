-- ARGV[1]: hold id, ARGV[2]: checkout TTL (ms). Moves an active, unlapsed hold into checkout:
-- its deadline becomes at least now + TTL by the store's clock. Already in checkout: as it is.
local id = ARGV[1]
local hk = p .. 'hold:' .. id
if redis.call('HEXISTS', p .. 'meta', 'v') == 0 then return '{"err":"unknown_performance"}' end
local r = redis.call('HMGET', hk, 'j', 'st', 'x')
if not r[1] then return '{"err":"unknown_hold"}' end
if r[2] == 'checkout' then
  return '{"hold":' .. r[1] .. ',"st":"checkout","x":' .. r[3] .. '}'
end
local h = cjson.decode(r[1])
local now = now_ms()
if r[2] ~= 'active' then return cjson.encode({ err = 'ended', st = r[2] }) end
if h.expires_at_ms <= now then return '{"err":"ended","st":"expired"}' end
local until_ms = math.max(h.expires_at_ms, now + tonumber(ARGV[2]))
local x = string.format('%.0f', until_ms)
redis.call('ZADD', p .. 'expiries', x, id)
redis.call('HSET', hk, 'st', 'checkout', 'x', x)
return '{"hold":' .. r[1] .. ',"st":"checkout","x":' .. x .. '}'
