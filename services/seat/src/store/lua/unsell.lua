-- ARGV[1]: hold id. Puts what the hold sold back on sale, once.
local id = ARGV[1]
local hk = p .. 'hold:' .. id
local r = redis.call('HMGET', hk, 'j', 'st')
if r[2] ~= 'sold' then return false end
local h = cjson.decode(r[1])
local freed = {}
for _, s in ipairs(h.seat_ids) do
  if redis.call('HGET', p .. 'seats', s) == 's:' .. id then
    redis.call('HDEL', p .. 'seats', s)
    freed[#freed + 1] = { s, 'available' }
  end
end
for _, aq in ipairs(h.areas) do
  if redis.call('HINCRBY', p .. 'areas', aq[1] .. '|sold', -aq[2]) < 0 then
    redis.call('HSET', p .. 'areas', aq[1] .. '|sold', 0)
  end
end
debit(h.buyer_id, tickets(h))
redis.call('HSET', hk, 'st', 'returned')
redis.call('EXPIRE', hk, ENDED_TTL)
return record(freed, area_names(h), false)
