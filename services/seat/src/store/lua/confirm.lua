-- ARGV[1]: the sale: the hold's id, buyer, seats and places as the order names them. Sells
-- exactly the hold's seats and places, once; a lapsed hold only within capacity and the limit.
local s = cjson.decode(ARGV[1])
local id = s.hold_id
local hk = p .. 'hold:' .. id
if redis.call('HEXISTS', p .. 'meta', 'v') == 0 then return '{"err":"unknown_performance"}' end
local r = redis.call('HMGET', hk, 'j', 'st')
if not r[1] then return '{"err":"unknown_hold"}' end
local h = cjson.decode(r[1])
-- The goods first: "already sold" is the answer to a redelivery of the same sale only, never to
-- an order that names other seats through a sold hold.
if not same_goods(h, s) then return '{"err":"not_the_hold"}' end
if r[2] == 'sold' then return '{"already":true}' end
local taken = taken_by_others(h, id)
if #taken > 0 then return cjson.encode({ err = 'unavailable', seat_ids = taken }) end
local was_live = live(r[2])
if not was_live then
  -- Its places and tickets are no longer counted: sell only what is free.
  local short = {}
  for a, q in pairs(aggregate(h.areas)) do
    local c = area_count(a)
    if redis.call('SISMEMBER', p .. 'arealist', a) == 0 or c[2] - c[3] - c[4] < q then
      short[#short + 1] = a
    end
  end
  if #short > 0 then return cjson.encode({ err = 'unavailable', areas = short }) end
  local refused = over_limit(h.buyer_id, tickets(h))
  if refused then return refused end
end
return '{"ok":' .. sell(id, h, was_live) .. '}'
