-- ARGV[1]: the hold record (JSON). All or nothing: every seat and place, or none.
local h = cjson.decode(ARGV[1])
if redis.call('HEXISTS', p .. 'meta', 'v') == 0 then return '{"err":"unknown_performance"}' end
-- A repeated call (a retry after a lost reply) changes nothing.
if redis.call('EXISTS', p .. 'hold:' .. h.hold_id) == 1 then return '{"dup":true}' end
-- The sale window, by the store's clock (absent for a performance installed before windows).
local w = redis.call('HMGET', p .. 'meta', 'opens', 'closes')
local now = now_ms()
if (w[1] and now < tonumber(w[1])) or (w[2] and now >= tonumber(w[2])) then
  return '{"err":"not_on_sale","opens":' .. (w[1] or '0') .. ',"closes":' .. (w[2] or '0') .. '}'
end
local taken, seen = {}, {}
for _, s in ipairs(h.seat_ids) do
  if seen[s] or redis.call('SISMEMBER', p .. 'inv', s) == 0
      or redis.call('HEXISTS', p .. 'seats', s) == 1 then
    taken[#taken + 1] = s
  end
  seen[s] = true
end
local want = {}
for _, aq in ipairs(h.areas) do want[aq[1]] = (want[aq[1]] or 0) + aq[2] end
local short = {}
for a, q in pairs(want) do
  local c = area_count(a)
  if q <= 0 or redis.call('SISMEMBER', p .. 'arealist', a) == 0 or c[2] - c[3] - c[4] < q then
    short[#short + 1] = a
  end
end
if #taken > 0 or #short > 0 then
  return cjson.encode({ err = 'unavailable', seat_ids = taken, areas = short })
end
local n = tickets(h)
local refused = over_limit(h.buyer_id, n, h.presale_limit)
if refused then return refused end
local held = {}
for _, s in ipairs(h.seat_ids) do
  redis.call('HSET', p .. 'seats', s, 'h:' .. h.hold_id)
  held[#held + 1] = { s, 'held' }
end
for _, aq in ipairs(h.areas) do redis.call('HINCRBY', p .. 'areas', aq[1] .. '|held', aq[2]) end
redis.call('HINCRBY', p .. 'buyers', h.buyer_id, n)
redis.call('HSET', p .. 'hold:' .. h.hold_id, 'j', ARGV[1], 'st', 'active')
redis.call('ZADD', p .. 'expiries', h.expires_at_ms, h.hold_id)
emit('placed', ARGV[1], now)
return '{"ok":' .. record(held, area_names(h), false) .. '}'
