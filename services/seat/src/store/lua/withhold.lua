-- ARGV[1]: seat ids (JSON array). The organizer withholds them from sale, all or none: a seat
-- held, sold, not in the inventory or listed twice refuses the lot. Withheld already: as is.
if redis.call('HEXISTS', p .. 'meta', 'v') == 0 then return '{"err":"unknown_performance"}' end
local ids = cjson.decode(ARGV[1])
local taken, seen = {}, {}
for _, s in ipairs(ids) do
  local o = redis.call('HGET', p .. 'seats', s)
  if seen[s] or (o and o ~= 'w') or redis.call('SISMEMBER', p .. 'inv', s) == 0 then
    taken[#taken + 1] = s
  end
  seen[s] = true
end
if #taken > 0 then return cjson.encode({ err = 'unavailable', seat_ids = taken }) end
local changed = {}
for _, s in ipairs(ids) do
  if redis.call('HSETNX', p .. 'seats', s, 'w') == 1 then changed[#changed + 1] = { s, 'withheld' } end
end
if #changed == 0 then return '{"dup":true}' end
return '{"ok":' .. record(changed, {}, false) .. '}'
