--[[ get_linked_pods: the pods of the live links among some link keys
(get_linked_pod with one key, batch_get_linked_pod with a chunk of keys).

KEYS     link keys, at most 1000; on a cluster all in one hash slot. Each is a
         string 'pod' (permanent) or 'pod:expires_ms' (temporary).
ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock

Returns an array with, for each key in order, the pod of its live link
(integer) or nil.
]]

-- Read TIME once: Redis 7.0 does not freeze it inside a script.
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[1])
end

local values = redis.call('MGET', unpack(KEYS))
local pods = {}
for i = 1, #KEYS do
  local value = values[i]
  local pod = false  -- false, not nil, keeps the array dense; it replies nil
  if value then
    local sep = string.find(value, ':', 1, true)
    if not sep then
      pod = tonumber(value)
    elseif now < tonumber(string.sub(value, sep + 1)) then
      -- Native expiry keeps a key alive at its expiry instant: decide here.
      pod = tonumber(string.sub(value, 1, sep - 1))
    end
  end
  pods[i] = pod
end
return pods
