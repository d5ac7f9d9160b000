--[[ get_linked_pods: the pods of the live links among some link keys
(get_linked_pod with one key, batch_get_linked_pod with a chunk of keys).

KEYS     link keys, at most 1000; on a cluster all in one hash slot. Each is a
         string 'pod' (permanent) or 'pod:expires_ms' (temporary).
ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock

Returns an array with, for each key in order, the pod of its live link
(integer) or nil.
Uses now and live from _links.lua, sent before this script.
]]

local values = redis.call('MGET', unpack(KEYS))
local pods = {}
for i = 1, #KEYS do
  local pod = live(values[i])
  -- false, not nil, keeps the array dense; it replies nil
  pods[i] = pod and tonumber(pod) or false
end
return pods
