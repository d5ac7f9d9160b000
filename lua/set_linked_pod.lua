--[[ set_linked_pod: link a uid to a pod, permanently or for N seconds.

KEYS and ARGV[1..5] as in _write.lua, then
ARGV[6]  the pod id, in decimal
ARGV[7]  persist seconds: -1 permanent, N > 0 temporary for N s

Returns 'a,b,moved,t' (see _write.lua): a the pod of the link live before
the call or -1, b 0.
]]

if not may_link(ARGV[6]) then return 'index' end
local before = link.pod
store(link, ARGV[6], tonumber(ARGV[7]))
return reply(before and tonumber(before) or -1, 0)
