--[[ get_linked_pods: the pods of the live links of one service among some
uids (get_linked_pod with one key, batch_get_linked_pod with a chunk, and the
check of index candidates on a cluster).

KEYS     the uids' link hashes, at most 1000; on a cluster all in one hash slot
ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock
ARGV[2]  the service name (field of each hash)

Returns one string: for each key in order, the pod of its live link (decimal)
or '' when it has none, joined by ','. One bulk string instead of an array:
the client splits it in one call rather than parsing a reply per key, and
the server encodes one reply instead of 1000.
Uses live_pod from _links.lua, sent before this script (TIME is read only if
a temporary link is met).
]]

local call, field, pods = redis.call, ARGV[2], {}
for i = 1, #KEYS do
  pods[i] = live_pod(call('HGET', KEYS[i], field)) or ''
end
return table.concat(pods, ',')
