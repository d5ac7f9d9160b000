--[[ index_drop: last step on a cluster: drop uids from a pod's index once a
link step (or a reader's check) saw their link elsewhere or dead.

KEYS[1..3] as in index_add.lua
ARGV[1]  the server time (ms) at or before the observation that the links
         had left the pod: the link step's reply, or a reader's range step
ARGV[2]  the pod id, in decimal
ARGV[3..] the uids

A uid with a pending mark younger than PENDING_MS stays: a write to this pod
may be under way. Past STEP_MS after the observation nothing is dropped (the
observation may be outdated).

Returns how many uids it dropped.
]]

local PENDING_MS, STEP_MS = 20000, 10000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now - tonumber(ARGV[1]) > STEP_MS then return 0 end
local dropped = 0
for i = 3, #ARGV do
  local mark = redis.call('ZSCORE', KEYS[3], ARGV[2] .. ':' .. ARGV[i])
  if not mark or tonumber(mark) < now - PENDING_MS then
    dropped = dropped + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
return dropped
