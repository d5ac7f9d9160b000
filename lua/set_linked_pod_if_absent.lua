--[[ set_linked_pod_if_absent: keep the live link (refreshing a temporary one)
or create it.

KEYS[1]  the link: string 'pod' (permanent) or 'pod:expires_ms' (temporary)
KEYS[2]  the uid's permanent links: hash service -> pod (same hash slot)
ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock
ARGV[2]  the service name (field of KEYS[2])
ARGV[3]  the pod id to link when there is no live link, in decimal
ARGV[4]  persist seconds: -1 permanent, N > 0 temporary for N s; also the new
         lifetime of a live temporary link

Returns the pod now linked (integer).
Uses now, live_link and store from _links.lua, sent before this script.
]]

local pod, expires = live_link(KEYS[1])
if not pod then
  store(ARGV[3], tonumber(ARGV[4]))
  return tonumber(ARGV[3])
end
-- A temporary link keeps its pod but gets the new lifetime; a permanent one stays.
if expires then store(pod, tonumber(ARGV[4])) end
return tonumber(pod)
