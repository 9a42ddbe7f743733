-- Shared by every seat script. KEYS[1] is the performance's key prefix `seat:{<perf_id>}:`; every
-- key below shares its hash tag, so one performance lives on one Redis Cluster slot.
-- Seats: `seats` hash seat -> "h:<hold_id>" (held), "s:<hold_id>" (sold) or "w" (withheld from
-- sale by the organizer); absent = available.
-- `meta`: `v` (version), `e` (epoch: set when the performance is installed afresh, versions
-- count within it), `rev`, `limit`, `opens`, `closes`.
-- A hold: `hold:<id>` hash with `j` (the record as placed), `st` (status) and, in checkout, `x`
-- (its checkout deadline, ms).
-- `changes`: the seat-map change log (stream id = version), trimmed to LOG entries.
-- `events`: the outbox, the domain events of the changes (`e`: {"t": placed|released|expired,
-- "at": store ms, "h": the hold record}), read by the relays' consumer group; never trimmed, an
-- entry is deleted once a relay acknowledged it (relay_ack.lua). `relay`: the name of the relay
-- that has the events for now (its lease; see relay_read.lua).
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
  local json = cjson.encode({ v = v, s = seats, a = counts, r = reload,
    e = redis.call('HGET', p .. 'meta', 'e') or '' })
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

-- The store's clock, ms since the epoch: sale windows and checkout deadlines use it, so every
-- replica agrees whatever its own clock says.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The outbox: the domain event `kind` of hold record `j` (JSON), appended in the same atomic step
-- as the change it describes, at `at` ms by the store's clock.
local function emit(kind, j, at)
  redis.call('XADD', p .. 'events', '*', 'e',
    '{"t":"' .. kind .. '","at":' .. string.format('%.0f', at) .. ',"h":' .. j .. '}')
end

-- A live hold still has its seats: active, or in checkout (its order is paying).
local function live(st)
  return st == 'active' or st == 'checkout'
end

-- The one way a hold ends without a sale: manual release and expiry both come here, each with
-- its `hold.ended` in the outbox.
local function release(id, reason)
  local hk = p .. 'hold:' .. id
  local r = redis.call('HMGET', hk, 'j', 'st', 'x')
  if not r[1] or not live(r[2]) then return false end
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
  emit(reason, r[1], now_ms())
  local change = record(freed, area_names(h), false)
  local x = ''
  if r[3] then x = ',"x":' .. r[3] end
  return '{"ok":' .. change .. ',"hold":' .. r[1] .. ',"st":"' .. reason .. '"' .. x .. '}'
end

-- The buyer's tickets plus n against the limit: nil when within, else the refusal (JSON).
-- `cap` (optional): a lower limit for this hold, a presale's own.
local function over_limit(buyer, n, cap)
  local limit = tonumber(redis.call('HGET', p .. 'meta', 'limit') or 0)
  if type(cap) == 'number' and cap > 0 and (limit == 0 or cap < limit) then limit = cap end
  local current = tonumber(redis.call('HGET', p .. 'buyers', buyer) or 0)
  if limit > 0 and current + n > limit then
    return cjson.encode({ err = 'limit', limit = limit, current = current })
  end
  return nil
end

-- Quantities per area, summed.
local function aggregate(areas)
  local m = {}
  for _, aq in ipairs(areas) do m[aq[1]] = (m[aq[1]] or 0) + aq[2] end
  return m
end

-- Whether two hold records name the same buyer, seats and places (in any order).
local function same_goods(a, b)
  if a.buyer_id ~= b.buyer_id or #a.seat_ids ~= #b.seat_ids then return false end
  local seats = {}
  for _, s in ipairs(a.seat_ids) do seats[s] = true end
  for _, s in ipairs(b.seat_ids) do
    if not seats[s] then return false end
  end
  local qa, qb = aggregate(a.areas), aggregate(b.areas)
  for k, q in pairs(qa) do
    if qb[k] ~= q then return false end
  end
  for k, q in pairs(qb) do
    if qa[k] ~= q then return false end
  end
  return true
end

-- Seats of h held or sold by another hold than `id`, or not in the inventory.
local function taken_by_others(h, id)
  local taken = {}
  for _, seat in ipairs(h.seat_ids) do
    local o = redis.call('HGET', p .. 'seats', seat)
    if o then
      if o ~= 'h:' .. id and o ~= 's:' .. id then taken[#taken + 1] = seat end
    elseif redis.call('SISMEMBER', p .. 'inv', seat) == 0 then
      taken[#taken + 1] = seat
    end
  end
  return taken
end

-- Marks h's seats and places sold for hold `id`; a live hold's places move from held to sold
-- and its tickets are counted already.
local function sell(id, h, was_live)
  local hk = p .. 'hold:' .. id
  if was_live then redis.call('ZREM', p .. 'expiries', id) end
  local sold = {}
  for _, seat in ipairs(h.seat_ids) do
    redis.call('HSET', p .. 'seats', seat, 's:' .. id)
    sold[#sold + 1] = { seat, 'sold' }
  end
  for _, aq in ipairs(h.areas) do
    if was_live and redis.call('HINCRBY', p .. 'areas', aq[1] .. '|held', -aq[2]) < 0 then
      redis.call('HSET', p .. 'areas', aq[1] .. '|held', 0)
    end
    redis.call('HINCRBY', p .. 'areas', aq[1] .. '|sold', aq[2])
  end
  if not was_live then redis.call('HINCRBY', p .. 'buyers', h.buyer_id, tickets(h)) end
  redis.call('HSET', hk, 'st', 'sold')
  redis.call('PERSIST', hk)
  return record(sold, area_names(h), false)
end
