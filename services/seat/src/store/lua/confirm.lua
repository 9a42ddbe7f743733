-- ARGV[1]: the sale (a hold record with the sold seats and places). Idempotent per hold.
local s = cjson.decode(ARGV[1])
local id = s.hold_id
local hk = p .. 'hold:' .. id
if redis.call('HEXISTS', p .. 'meta', 'v') == 0 then return '{"err":"unknown_performance"}' end
local r = redis.call('HMGET', hk, 'j', 'st')
if r[2] == 'sold' then return '{"already":true}' end
local conflicts = {}
for _, seat in ipairs(s.seat_ids) do
  local o = redis.call('HGET', p .. 'seats', seat)
  if o then
    if o ~= 'h:' .. id and o ~= 's:' .. id then conflicts[#conflicts + 1] = seat end
  elseif redis.call('SISMEMBER', p .. 'inv', seat) == 0 then
    conflicts[#conflicts + 1] = seat
  end
end
if #conflicts > 0 then return cjson.encode({ conflict = conflicts }) end
local active = r[2] == 'active'
if active then redis.call('ZREM', p .. 'expiries', id) end
local sold = {}
for _, seat in ipairs(s.seat_ids) do
  redis.call('HSET', p .. 'seats', seat, 's:' .. id)
  sold[#sold + 1] = { seat, 'sold' }
end
for _, aq in ipairs(s.areas) do
  if active and redis.call('HINCRBY', p .. 'areas', aq[1] .. '|held', -aq[2]) < 0 then
    redis.call('HSET', p .. 'areas', aq[1] .. '|held', 0)
  end
  redis.call('HINCRBY', p .. 'areas', aq[1] .. '|sold', aq[2])
end
if not active then redis.call('HINCRBY', p .. 'buyers', s.buyer_id, tickets(s)) end
local rec = s
if r[1] then
  rec = cjson.decode(r[1])
  rec.seat_ids = s.seat_ids
  rec.areas = s.areas
end
redis.call('HSET', hk, 'j', cjson.encode(rec), 'st', 'sold')
redis.call('PERSIST', hk)
return '{"ok":' .. record(sold, area_names(s), false) .. '}'
