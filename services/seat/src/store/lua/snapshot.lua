-- The performance's dynamic state at one version, read atomically.
local m = redis.call('HMGET', p .. 'meta', 'v', 'rev', 'e')
if not m[1] then return false end
local taken = {}
local all = redis.call('HGETALL', p .. 'seats')
for i = 1, #all, 2 do
  local st = 'held'
  local o = string.sub(all[i + 1], 1, 1)
  if o == 's' then st = 'sold' elseif o == 'w' then st = 'withheld' end
  taken[#taken + 1] = { all[i], st }
end
local areas = {}
for _, a in ipairs(redis.call('SMEMBERS', p .. 'arealist')) do areas[#areas + 1] = area_count(a) end
return cjson.encode({ v = tonumber(m[1]), rev = tonumber(m[2]), e = m[3] or '', s = taken, a = areas })
