--[[ get_pod_states: the live pod states of a service.

KEYS[1]  the pod states of a service (see _states.lua)
ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock.

Returns a flat array pod id, state, pod id, state… of the live states.
]]

local all = redis.call('HGETALL', KEYS[1])
local states = {}
for i = 1, #all, 2 do
  local state = live_state(all[i + 1])
  if state then
    states[#states + 1] = all[i]
    states[#states + 1] = state
  end
end
return states
