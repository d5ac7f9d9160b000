--[[ remove_linked_pod (and remove_linked_pod_with_id): end the live link, or
keep it as a temporary link for a persist window.

KEYS[1]  the link: string 'pod' (permanent) or 'pod:expires_ms' (temporary)
KEYS[2]  the uid's permanent links: hash service -> pod (same hash slot)
ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock
ARGV[2]  the service name (field of KEYS[2])
ARGV[3]  persist seconds: -1 or 0 delete the link, N > 0 keep it N s as temporary
ARGV[4]  the pod id the live link must point at, in decimal, or '' for any pod

Returns 1 if a live link (to ARGV[4], if given) was found and changed, else 0.
Uses now, live_link and store from _links.lua, sent before this script.
]]

local pod = live_link(KEYS[1])
if not pod then
  -- Reclaim a dead link now: under a caller's clock it has no native expiry.
  redis.call('DEL', KEYS[1])
  return 0
end
if ARGV[4] ~= '' and pod ~= ARGV[4] then return 0 end
local seconds = tonumber(ARGV[3])
if seconds > 0 then
  store(pod, seconds)
else
  redis.call('DEL', KEYS[1])
  redis.call('HDEL', KEYS[2], ARGV[2])
end
return 1
