--[[ try_set_linked_pod: link a uid to a pod unless a live permanent link to
another pod exists.

KEYS and ARGV[1..5] as in _write.lua, then
ARGV[6]  the pod id, in decimal
ARGV[7]  persist seconds: -1 permanent, N > 0 temporary for N s

Returns 'a,b,moved,t' (see _write.lua): '1,pod id,moved,t' after linking,
or '0,other pod,-1,t' leaving everything as it was.
]]

-- Only a live permanent link to another pod blocks; a temporary one never does.
if link.pod and not link.expires and link.pod ~= ARGV[6] then
  return reply(0, tonumber(link.pod))
end
if not may_link(ARGV[6]) then return 'index' end
store(link, ARGV[6], tonumber(ARGV[7]))
return reply(1, tonumber(ARGV[6]))
