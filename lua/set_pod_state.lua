--[[ set_pod_state: overwrite one pod's state, permanently or for N seconds.

KEYS[1]  the pod states of a service (see _states.lua)
ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock, then
ARGV[2]  the pod id, in decimal
ARGV[3]  the state
ARGV[4]  seconds the state lives (a heartbeat), or '' for a permanent state

Returns 1.
]]

local value = ':' .. ARGV[3]
if ARGV[4] ~= '' then
  value = string.format('%.0f', now + tonumber(ARGV[4]) * 1000) .. value
end
redis.call('HSET', KEYS[1], ARGV[2], value)
settle()
return 1
