--[[ index_add: first step of a link write on a cluster (the pod's index
lives in another hash slot than the link): put the uid in the index of the
pod the write may link to, BEFORE the link moves, so the index never
under-reports.

KEYS[1]  the pod's index 'P{ns:svc}:ix:<pod>' (sorted set, score 0, uids)
KEYS[2]  'P{ns:svc}:ixp': the pods of the service that have an index (set)
KEYS[3]  'P{ns:svc}:ixw': pending steps, member '<pod>:<uid>', score = time
ARGV[1]  the uid
ARGV[2]  the pod id, in decimal

The pending mark protects the new entry from index_drop.lua for PENDING_MS:
the link step must follow within STEP_MS (_write.lua refuses it later), and
a drop must run within STEP_MS of what it observed, so a drop can never
remove an entry whose link lands after the drop looked. Old marks are swept
here.

Returns the server time in ms (the link step's ARGV[5]).
]]

local PENDING_MS = 20000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 0, ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], now, ARGV[2] .. ':' .. ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. string.format('%.0f', now - PENDING_MS))
return now
