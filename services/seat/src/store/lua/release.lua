-- ARGV[1]: hold id, ARGV[2]: `released` or `expired`.
return release(ARGV[1], ARGV[2])
