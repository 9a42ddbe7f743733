-- Shared by every seat script. KEYS[1] is the performance's key prefix `seat:{<perf_id>}:`; every
-- key below shares its hash tag, so one performance lives on one Redis Cluster slot.
-- Seats: `seats` hash seat -> "h:<hold_id>" (held) or "s:<hold_id>" (sold); absent = available.
local p = KEYS[1]
local LOG = 10000
local ENDED_TTL = 86400

local function area_count(a)
  local v = redis.call('HMGET', p .. 'areas', a .. '|cap', a .. '|held', a .. '|sold')
  return { a, tonumber(v[1] or 0), tonumber(v[2] or 0), tonumber(v[3] or 0) }
end

-- Bumps the version and appends the change to the log (stream id = version).
local function record(seats, areas, reload)
  local v = redis.call('HINCRBY', p .. 'meta', 'v', 1)
  local counts = {}
  for _, a in ipairs(areas) do counts[#counts + 1] = area_count(a) end
  local json = cjson.encode({ v = v, s = seats, a = counts, r = reload })
  redis.call('XADD', p .. 'changes', 'MAXLEN', '~', LOG, v .. '-1', 'd', json)
  return json
end

local function debit(buyer, n)
  local left = redis.call('HINCRBY', p .. 'buyers', buyer, -n)
  if left <= 0 then redis.call('HDEL', p .. 'buyers', buyer) end
end

local function tickets(h)
  local n = #h.seat_ids
  for _, aq in ipairs(h.areas) do n = n + aq[2] end
  return n
end

local function area_names(h)
  local names = {}
  for _, aq in ipairs(h.areas) do names[#names + 1] = aq[1] end
  return names
end

-- The one way a hold ends without a sale: manual release and expiry both come here.
local function release(id, reason)
  local hk = p .. 'hold:' .. id
  local r = redis.call('HMGET', hk, 'j', 'st')
  if not r[1] or r[2] ~= 'active' then return false end
  local h = cjson.decode(r[1])
  redis.call('ZREM', p .. 'expiries', id)
  local freed = {}
  for _, s in ipairs(h.seat_ids) do
    if redis.call('HGET', p .. 'seats', s) == 'h:' .. id then
      redis.call('HDEL', p .. 'seats', s)
      freed[#freed + 1] = { s, 'available' }
    end
  end
  for _, aq in ipairs(h.areas) do
    if redis.call('HINCRBY', p .. 'areas', aq[1] .. '|held', -aq[2]) < 0 then
      redis.call('HSET', p .. 'areas', aq[1] .. '|held', 0)
    end
  end
  debit(h.buyer_id, tickets(h))
  redis.call('HSET', hk, 'st', reason)
  redis.call('EXPIRE', hk, ENDED_TTL)
  local change = record(freed, area_names(h), false)
  return '{"ok":' .. change .. ',"hold":' .. r[1] .. ',"st":"' .. reason .. '"}'
end
