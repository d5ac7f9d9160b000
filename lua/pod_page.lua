--[[ pod_page: one page of a pod's index, walked in lexical order of uids.

KEYS[1]  the pod's index 'P{ns:svc}:ix:<pod>' (sorted set, score 0, uids)
ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock
ARGV[2]  mode: 'range' (cluster: candidates only), 'list' or 'remove'
         (standalone/Sentinel: candidates checked against their links in this
         script, stale entries dropped)
ARGV[3]  start after this uid ('' = from the start)
ARGV[4]  page size
ARGV[5]  the service name
ARGV[6]  the pod id, in decimal
ARGV[7]  the head of a uid's link key 'P{ns:' (the script appends the encoded
         uid and '}'), for the modes that check links
ARGV[8]  the index key prefix 'P{ns:svc}:ix' (modes that change the index)
ARGV[9]  remove: persist seconds (-1 or 0 delete, N > 0 keep N s as temporary)

Returns {next, t, ...}: next is the last uid read ('' when the index has no
more), t the server time when the range was read; then 'range' and 'list'
give uids (all candidates / the live ones), 'remove' how many it removed.

The non-range modes read link keys that are not in KEYS: they are built from
the index's members. A standalone server has no slots, so this is sound there;
on a cluster the backend uses 'range' and checks the links by slot instead.
Uses _links.lua and _store.lua, sent before this script.
]]

local min = '-'
if ARGV[3] ~= '' then min = '(' .. ARGV[3] end
local uids = redis.call('ZRANGEBYLEX', KEYS[1], min, '+', 'LIMIT', 0, tonumber(ARGV[4]))
local next = ''
if #uids == tonumber(ARGV[4]) then next = uids[#uids] end
local reply = {next, server_time()}
if ARGV[2] == 'range' then
  for i = 1, #uids do reply[#reply + 1] = uids[i] end
  return reply
end

local escapes = {['%'] = '%25', ['{'] = '%7B', ['}'] = '%7D', [':'] = '%3A'}
local field, pod, ix = ARGV[5], ARGV[6], ARGV[8]
local count = 0
for i = 1, #uids do
  local key = ARGV[7] .. string.gsub(uids[i], '[%%{}:]', escapes) .. '}'
  if ARGV[2] == 'remove' then
    local link = open(key, field, uids[i], ix)
    if link.pod == pod then
      local seconds = tonumber(ARGV[9])
      if seconds > 0 then store(link, pod, seconds) else delete(link) end
      finish(link)
      count = count + 1
    else
      if not link.pod and link.old then
        delete(link)  -- a dead link: reclaim it (and its index entry)
        finish(link)
      end
      unindex(ix, pod, uids[i])  -- stale: the link is dead or elsewhere
    end
  else
    local current = live_pod(redis.call('HGET', key, field))
    if current == pod then
      count = count + 1
      if ARGV[2] == 'list' then reply[#reply + 1] = uids[i] end
    else
      unindex(ix, pod, uids[i])  -- stale: the link is dead or elsewhere
    end
  end
end
if ARGV[2] == 'remove' then reply[#reply + 1] = count end
return reply
