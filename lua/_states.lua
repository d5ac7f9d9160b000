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

-- The state held by a stored value if it is live, else nil.
local function live_state(value)
  if not value then return nil end
  local sep = string.find(value, ':', 1, true)
  if sep > 1 and now >= tonumber(string.sub(value, 1, sep - 1)) then return nil end
  return string.sub(value, sep + 1)
end
