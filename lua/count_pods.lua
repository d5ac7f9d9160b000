--[[ count_pods: live links per pod of a service, standalone/Sentinel only.

KEYS[1]  'P{ns:svc}:ixp': the pods of the service that have an index
ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock
ARGV[2]  the index key prefix 'P{ns:svc}:ix'

On a standalone server the link scripts keep each pod's index exact except
for temporary links that died without a write (Redis expired their hash, or
the clock passed them); those are exactly the entries of ix..'t:'..pod
scored at or before now. So a pod's live links are its index's size less
that count: O(log n) per pod, no link read. The index keys are built here,
not passed in KEYS: a standalone server has no slots.

Returns a flat array pod id, count, pod id, count… (pods with none left out).
Uses clock and ms from _links.lua, sent before this script.
]]

local counts = {}
for _, pod in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local n = redis.call('ZCARD', ARGV[2] .. ':' .. pod)
    - redis.call('ZCOUNT', ARGV[2] .. 't:' .. pod, '-inf', ms(clock()))
  if n > 0 then
    counts[#counts + 1] = tonumber(pod)
    counts[#counts + 1] = n
  end
end
return counts
