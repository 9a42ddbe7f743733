-- ARGV[1]: a sale SeatDB made (a hold record), for a store that lost it. Once per hold.
local s = cjson.decode(ARGV[1])
local id = s.hold_id
local hk = p .. 'hold:' .. id
if redis.call('HEXISTS', p .. 'meta', 'v') == 0 then return '{"err":"unknown_performance"}' end
local r = redis.call('HMGET', hk, 'j', 'st')
if r[2] == 'sold' then return '{"already":true}' end
local taken = taken_by_others(s, id)
if #taken > 0 then return cjson.encode({ err = 'unavailable', seat_ids = taken }) end
if not r[1] then redis.call('HSET', hk, 'j', ARGV[1]) end
return '{"ok":' .. sell(id, s, live(r[2])) .. '}'
