--[[ remove_pod_state: delete one pod's state.

KEYS[1]  the pod states of a service (see _states.lua)
ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock, then
ARGV[2]  the pod id, in decimal

Returns 1 if the pod had a live state, else 0 (a dead one is deleted too).
]]

local state = live_state(redis.call('HGET', KEYS[1], ARGV[2]))
redis.call('HDEL', KEYS[1], ARGV[2])
settle()
if state then return 1 end
return 0
