-- ARGV: ids of `events` entries a relay wrote to the PostgreSQL outbox. Acknowledged and deleted
-- in one step, so the stream holds exactly what is left to relay.
local ev = p .. 'events'
if #ARGV == 0 or redis.call('EXISTS', ev) == 0 then return 0 end
redis.call('XACK', ev, 'relay', unpack(ARGV))
return redis.call('XDEL', ev, unpack(ARGV))
