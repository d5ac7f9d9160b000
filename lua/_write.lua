--[[ _write: the frame of the scripts that write one link (after _links.lua
and _store.lua).

KEYS[1]  the uid's links: hash service -> link value
ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock
ARGV[2]  the service name (field of KEYS[1])
ARGV[3]  the uid (member of the pod indexes)
ARGV[4]  standalone/Sentinel: the index key prefix 'P{ns:svc}:ix', kept in
         this very script; '' on a cluster
ARGV[5]  cluster: the server time (ms) returned by index_add.lua for the pod
         this call may link to, or '' when it did not run
ARGV[6..] the script's own arguments

Every writer replies 'a,b,moved,t', one string of four integers (the client
splits one bulk reply, cheaper than parsing an array of four): a and b its
answer, moved the pod whose index may still hold the uid although the link
left it (-1: none), t the server time after the write on a cluster, else 0
(both for the cluster's index_drop.lua). A
cluster call that would link to a new pod without index_add.lua having run
replies 'index' and changes nothing.
]]

-- A cluster call's first step must be recent (see index_add.lua): past
-- STEP_MS, a reader may already have dropped what it added.
local STEP_MS = 10000
if ARGV[5] ~= '' and server_time() - tonumber(ARGV[5]) > STEP_MS then
  return redis.error_reply('ERR stateful: index step is older than 10 s; nothing changed')
end

local link = open(KEYS[1], ARGV[2], ARGV[3], ARGV[4])

-- May this call link to pod? On a cluster only once the pod's index has it.
local function may_link(pod)
  return ARGV[4] ~= '' or ARGV[5] ~= '' or pod == link.pod
end

local function reply(a, b)
  finish(link)
  local t = '0'
  if ARGV[4] == '' then t = ms(server_time()) end
  -- (a, b and pods are integers below 2^31: concatenation writes them exactly.)
  return a .. ',' .. b .. ',' .. (link.moved or -1) .. ',' .. t
end
