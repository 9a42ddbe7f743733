-- ARGV[1]: seat ids (JSON array). Puts the withheld ones back on sale; others stay as they are.
if redis.call('HEXISTS', p .. 'meta', 'v') == 0 then return '{"err":"unknown_performance"}' end
local freed = {}
for _, s in ipairs(cjson.decode(ARGV[1])) do
  if redis.call('HGET', p .. 'seats', s) == 'w' then
    redis.call('HDEL', p .. 'seats', s)
    freed[#freed + 1] = { s, 'available' }
  end
end
if #freed == 0 then return '{"dup":true}' end
return '{"ok":' .. record(freed, {}, false) .. '}'
