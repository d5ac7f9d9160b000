--[[ upgrade_link: move one link of the former layout into the uid's hash.

The former layout (before 0.1.0's hash per uid) kept a string per link,
'pod' (permanent) or 'pod:expires_ms' (temporary), plus a hash of the uid's
permanent links, service -> pod. `stateful migrate` runs this once per such
string; running it again finds nothing to do.

KEYS and ARGV[1..5] as in _write.lua, then
KEYS[2]  the former link: string P{ns:uid}:link:svc (same hash slot as KEYS[1])
KEYS[3]  the former permanent links: hash P{ns:uid}:perm
ARGV[6]  the value of KEYS[2] the caller read (its pod is the one indexed first
         on a cluster)

Returns 'a,b,moved,t' (see _write.lua) with a:
   1  moved: the link now lives in the uid's hash, its expiry kept to the ms
      and updated_ms set to now (the former layout did not keep it)
   2  the uid's hash already held a live link to this service, written since
      the upgrade began: that one wins, the former one is dropped
   3  the former link was dead: dropped
  -2  KEYS[2] no longer holds ARGV[6]: nothing changed (read it again)
and b 0. A cluster call whose pod is not indexed yet replies 'index'.
]]

local raw = redis.call('GET', KEYS[2])
if raw ~= ARGV[6] then return reply(-2, 0) end

local function drop_former()
  redis.call('DEL', KEYS[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
end

if link.pod then
  drop_former()
  return reply(2, 0)
end
local sep = string.find(raw, ':', 1, true)
local pod, expires = raw, nil
if sep then pod, expires = string.sub(raw, 1, sep - 1), tonumber(string.sub(raw, sep + 1)) end
if expires and clock() >= expires then
  drop_former()
  return reply(3, 0)
end
if not may_link(pod) then return 'index' end
local seconds = -1
if expires then seconds = (expires - clock()) / 1000 end
store(link, pod, seconds)
drop_former()
return reply(1, 0)
