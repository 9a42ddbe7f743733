-- ARGV[1]: hold id, ARGV[2]: `released` or `expired`. A hold in checkout is not released.
if redis.call('HGET', p .. 'hold:' .. ARGV[1], 'st') == 'checkout' then
  return '{"err":"in_checkout"}'
end
return release(ARGV[1], ARGV[2])
