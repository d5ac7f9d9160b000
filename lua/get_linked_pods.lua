--[[ get_linked_pods: the pods of the live links of one service among some
uids (get_linked_pod with one key, batch_get_linked_pod with a chunk, and the
check of index candidates on a cluster).

KEYS     the uids' link hashes, at most 1000; on a cluster all in one hash slot
ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock
ARGV[2]  the service name (field of each hash)

Returns an array with, for each key in order, the pod of its live link
(integer) or nil.
Uses now and live from _links.lua, sent before this script.
]]

local pods = {}
for i = 1, #KEYS do
  local pod = live(redis.call('HGET', KEYS[i], ARGV[2]))
  -- false, not nil, keeps the array dense; it replies nil
  pods[i] = pod and tonumber(pod) or false
end
return pods
