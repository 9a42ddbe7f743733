-- ARGV: revision, ticket limit, seat ids (JSON array), areas (JSON [[id, capacity]]), sale
-- window opens and closes (ms).
local v = redis.call('HGET', p .. 'meta', 'v')
local rev = tonumber(redis.call('HGET', p .. 'meta', 'rev') or -1)
if v and tonumber(ARGV[1]) <= rev then
  -- A performance installed before sale windows existed learns its window (no seat changes).
  if not redis.call('HGET', p .. 'meta', 'opens') then
    redis.call('HSET', p .. 'meta', 'opens', ARGV[5], 'closes', ARGV[6])
  end
  return false
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
return record({}, names, true)
