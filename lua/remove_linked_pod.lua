--[[ remove_linked_pod (and remove_linked_pod_with_id): end the live link, or
keep it as a temporary link for a persist window.

KEYS and ARGV[1..5] as in _write.lua, then
ARGV[6]  persist seconds: -1 or 0 delete the link, N > 0 keep it N s as temporary
ARGV[7]  the pod id the live link must point at, in decimal, or '' for any pod

Returns 'a,b,moved,t' (see _write.lua): a 1 if a live link (to ARGV[7], if
given) was found and changed, else 0; b 0.
]]

if not link.pod then
  -- Reclaim a dead link now: under a caller's clock it has no native expiry.
  if link.old then delete(link) end
  return reply(0, 0)
end
if ARGV[7] ~= '' and link.pod ~= ARGV[7] then return reply(0, 0) end
local seconds = tonumber(ARGV[6])
if seconds > 0 then
  store(link, link.pod, seconds)
else
  delete(link)
end
return reply(1, 0)
