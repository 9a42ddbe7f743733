-- ARGV[1]: the reader (a relay's consumer name), ARGV[2]: its lease (ms), ARGV[3]: most entries.
-- One reader at a time relays a performance's events, so the outbox gets them in log order: the
-- one whose name `relay` holds. It gets first every entry an earlier reader read and did not
-- acknowledge (claimed from it: a relay that died, or lost its lease), then what is new. With
-- nothing left to relay it gives the lease up, so whichever replica has work next takes it at
-- once. Answers a flat array: id, entry, id, entry, ...
local ev, lease, group = p .. 'events', p .. 'relay', 'relay'
local me, max = ARGV[1], tonumber(ARGV[3])
local holder = redis.call('GET', lease)
if holder and holder ~= me then return {} end
-- Acknowledged entries are deleted: the stream holds exactly what is left to relay.
if redis.call('XLEN', ev) == 0 then
  if holder then redis.call('DEL', lease) end
  return {}
end
-- From the first entry: whatever the stream holds when the group is made is still to relay.
redis.pcall('XGROUP', 'CREATE', ev, group, '0')
local claimed_all = true
local pending = redis.call('XPENDING', ev, group)
if pending[1] > 0 then
  local mine = 0
  for _, c in ipairs(pending[4] or {}) do
    if c[1] == me then mine = tonumber(c[2]) end
  end
  if pending[1] > mine then
    -- Another reader's entries, never acknowledged: this reader relays them before anything
    -- newer (a duplicate, should that reader still write them, is one outbox row: see
    -- store_relay.rs).
    local cursor, rounds = '0-0', 0
    repeat
      local r = redis.call('XAUTOCLAIM', ev, group, me, 0, cursor, 'COUNT', 1000, 'JUSTID')
      cursor, rounds = r[1], rounds + 1
    until cursor == '0-0' or rounds >= 50
    claimed_all = cursor == '0-0'
    -- Readers left with nothing pending are names of relays gone (a live one comes back by
    -- reading again): dropped, so the group does not grow with every restart.
    for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', ev, group)) do
      local name, n = nil, 0
      for i = 1, #c, 2 do
        if c[i] == 'name' then name = c[i + 1] end
        if c[i] == 'pending' then n = tonumber(c[i + 1]) end
      end
      if name and name ~= me and n == 0 then
        redis.call('XGROUP', 'DELCONSUMER', ev, group, name)
      end
    end
  end
end
local out = {}
local function take(reply)
  if not reply or not reply[1] then return end
  for _, e in ipairs(reply[1][2]) do
    if e[2] then
      out[#out + 1] = e[1]
      out[#out + 1] = e[2][2]
    else
      redis.call('XACK', ev, group, e[1]) -- deleted while pending: nothing to relay
    end
  end
end
take(redis.call('XREADGROUP', 'GROUP', group, me, 'COUNT', max, 'STREAMS', ev, '0'))
local room = max - #out / 2
if claimed_all and room > 0 then
  take(redis.call('XREADGROUP', 'GROUP', group, me, 'COUNT', room, 'STREAMS', ev, '>'))
end
if #out == 0 then
  if holder then redis.call('DEL', lease) end
  return out
end
redis.call('SET', lease, me, 'PX', ARGV[2])
return out
