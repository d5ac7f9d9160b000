--[[ try_set_linked_pod: link a uid to a pod unless a live permanent link to
another pod exists.

KEYS[1]  the link: string 'pod' (permanent) or 'pod:expires_ms' (temporary)
KEYS[2]  the uid's permanent links: hash service -> pod (same hash slot)
ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock
ARGV[2]  the service name (field of KEYS[2])
ARGV[3]  the pod id, in decimal
ARGV[4]  persist seconds: -1 permanent, N > 0 temporary for N s

Returns {1, pod id} after linking, or {0, other pod} leaving everything as it was.
Uses now, live_link and store from _links.lua, sent before this script.
]]

local pod, expires = live_link(KEYS[1])
-- Only a live permanent link to another pod blocks; a temporary one never does.
if pod and expires == nil and pod ~= ARGV[3] then
  return {0, tonumber(pod)}
end
store(ARGV[3], tonumber(ARGV[4]))
return {1, tonumber(ARGV[3])}
