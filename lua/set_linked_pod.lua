--[[ set_linked_pod: link a uid to a pod, permanently or for N seconds.

KEYS[1]  the link: string 'pod' (permanent) or 'pod:expires_ms' (temporary)
KEYS[2]  the uid's permanent links: hash service -> pod (same hash slot)
ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock
ARGV[2]  the service name (field of KEYS[2])
ARGV[3]  the pod id, in decimal
ARGV[4]  persist seconds: -1 permanent, N > 0 temporary for N s

Returns the pod of the link that was live before the call (integer), or nil.
Uses now, live_link and store from _links.lua, sent before this script.
]]

local previous = live_link(KEYS[1])
store(ARGV[3], tonumber(ARGV[4]))
if previous then return tonumber(previous) end
return nil
