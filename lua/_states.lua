--[[ _states: what the pod-state scripts share (sent before each, like _links).

KEYS[1]  the pod states of a service: hash pod id -> ':state' (permanent) or
         'expires_ms:state' (a heartbeat, gone at expires_ms)
ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock
]]

local now, server_clock
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  server_clock = true
else
  now = tonumber(ARGV[1])
end

-- The expiry (nil: permanent) and the state of a stored value. A value with
-- no colon, or whose text before the first colon is not a number, was written
-- before heartbeats existed: a permanent state, stored raw (it may hold colons).
local function split(value)
  local sep = string.find(value, ':', 1, true)
  if not sep then return nil, value end
  if sep == 1 then return nil, string.sub(value, 2) end
  local expires = tonumber(string.sub(value, 1, sep - 1))
  if not expires then return nil, value end
  return expires, string.sub(value, sep + 1)
end

-- The state held by a stored value if it is live, else nil.
local function live_state(value)
  if not value then return nil end
  local expires, state = split(value)
  if expires and now >= expires then return nil end
  return state
end

-- After a write: drop the dead states and, on the server clock, give the hash
-- a native expiry when every state in it is temporary (none otherwise). A
-- caller's clock may be far from real time: no native expiry then.
local function settle()
  local all = redis.call('HGETALL', KEYS[1])
  local permanent, latest = false, 0
  for i = 1, #all, 2 do
    local expires = split(all[i + 1])
    if not expires then
      permanent = true
    elseif now >= expires then
      redis.call('HDEL', KEYS[1], all[i])
    elseif expires > latest then
      latest = expires
    end
  end
  if server_clock then
    if permanent then
      redis.call('PERSIST', KEYS[1])
    elseif latest > 0 then
      redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', latest))
    end
  end
end
