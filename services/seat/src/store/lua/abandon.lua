-- ARGV[1]: hold id. The order paying for the hold gave up (expired or cancelled unpaid): the
-- hold ends as released whether or not it is in checkout, with its `hold.ended`.
return release(ARGV[1], 'released')
