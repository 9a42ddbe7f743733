-- ARGV: revision, ticket limit, seat ids (JSON array), areas (JSON [[id, capacity]]), sale
-- window opens and closes (ms), the sales SeatDB recorded (JSON array of hold records: applied
-- only when the store does not have the performance, in this same atomic step), the seats SeatDB
-- has withheld from sale (JSON array, likewise only afresh; absent: none).
local v = redis.call('HGET', p .. 'meta', 'v')
local rev = tonumber(redis.call('HGET', p .. 'meta', 'rev') or -1)
if v and tonumber(ARGV[1]) <= rev then
  -- A performance installed before sale windows existed learns its window (no seat changes).
  if not redis.call('HGET', p .. 'meta', 'opens') then
    redis.call('HSET', p .. 'meta', 'opens', ARGV[5], 'closes', ARGV[6])
  end
  return false
end
if not v and ARGV[7] == '' then
  -- Afresh, and the caller did not send SeatDB's sales: it reads them and comes back.
  return '{"err":"unknown_performance"}'
end
if not v then
  -- Afresh (new, or the store lost it): a new epoch, named by the store's clock in µs.
  local t = redis.call('TIME')
  redis.call('HSET', p .. 'meta', 'e', t[1] .. string.format('%06d', tonumber(t[2])))
end
redis.call('HSET', p .. 'meta', 'rev', ARGV[1], 'limit', ARGV[2], 'opens', ARGV[5], 'closes', ARGV[6])
redis.call('DEL', p .. 'inv')
local seats = cjson.decode(ARGV[3])
for i = 1, #seats, 500 do
  redis.call('SADD', p .. 'inv', unpack(seats, i, math.min(i + 499, #seats)))
end
local names = {}
for _, ac in ipairs(cjson.decode(ARGV[4])) do
  redis.call('HSET', p .. 'areas', ac[1] .. '|cap', ac[2])
  redis.call('SADD', p .. 'arealist', ac[1])
  names[#names + 1] = ac[1]
end
if not v then
  -- What SeatDB sold, with no change of its own: this install's change makes readers reload.
  for _, sale in ipairs(cjson.decode(ARGV[7])) do
    local id = sale.hold_id
    if redis.call('EXISTS', p .. 'hold:' .. id) == 0 and #taken_by_others(sale, id) == 0 then
      for _, seat in ipairs(sale.seat_ids) do
        redis.call('HSET', p .. 'seats', seat, 's:' .. id)
      end
      for _, aq in ipairs(sale.areas) do
        redis.call('HINCRBY', p .. 'areas', aq[1] .. '|sold', aq[2])
      end
      redis.call('HINCRBY', p .. 'buyers', sale.buyer_id, tickets(sale))
      redis.call('HSET', p .. 'hold:' .. id, 'j', cjson.encode(sale), 'st', 'sold')
    end
  end
  if ARGV[8] and ARGV[8] ~= '' then
    for _, seat in ipairs(cjson.decode(ARGV[8])) do
      if redis.call('SISMEMBER', p .. 'inv', seat) == 1 then
        redis.call('HSETNX', p .. 'seats', seat, 'w')
      end
    end
  end
end
return record({}, names, true)
