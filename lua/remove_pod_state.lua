--[[ remove_pod_state: delete one pod's state.

KEYS[1], ARGV[1] as in _states.lua, then
ARGV[2]  the pod id, in decimal

Returns 1 if the pod had a live state, else 0 (a dead one is deleted too).
]]

local state = live_state(redis.call('HGET', KEYS[1], ARGV[2]))
redis.call('HDEL', KEYS[1], ARGV[2])
if state then return 1 end
return 0
