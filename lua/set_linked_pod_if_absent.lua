--[[ set_linked_pod_if_absent (and place_linked_pod): keep the live link
(refreshing a temporary one) or create it.

KEYS and ARGV[1..5] as in _write.lua, then
ARGV[6]  the pod id to link when there is no live link, in decimal; '' (only
         place_linked_pod) to change nothing then
ARGV[7]  persist seconds: -1 permanent, N > 0 temporary for N s; also the new
         lifetime of a live temporary link

Returns 'a,b,moved,t' (see _write.lua): a the pod now linked or -1, b 0.
]]

if link.pod then
  -- A temporary link keeps its pod but gets the new lifetime; a permanent one stays.
  if link.expires then store(link, link.pod, tonumber(ARGV[7])) end
  return reply(tonumber(link.pod), 0)
end
if ARGV[6] == '' then return reply(-1, 0) end
if not may_link(ARGV[6]) then return 'index' end
store(link, ARGV[6], tonumber(ARGV[7]))
return reply(tonumber(ARGV[6]), 0)
