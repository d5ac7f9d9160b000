--[[ set_pod_state: overwrite one pod's state, permanently or for N seconds.

KEYS[1], ARGV[1] as in _states.lua, then
ARGV[2]  the pod id, in decimal
ARGV[3]  the state
ARGV[4]  seconds the state lives (a heartbeat), or '' for a permanent state

Drops the dead states it finds and, on the server clock, gives the hash a
native expiry when every state in it is temporary. Returns 1.
]]

local value = ':' .. ARGV[3]
if ARGV[4] ~= '' then
  value = string.format('%.0f', now + tonumber(ARGV[4]) * 1000) .. value
end
redis.call('HSET', KEYS[1], ARGV[2], value)
local all = redis.call('HGETALL', KEYS[1])
local permanent, latest = false, 0
for i = 1, #all, 2 do
  local sep = string.find(all[i + 1], ':', 1, true)
  if sep == 1 then
    permanent = true
  else
    local expires = tonumber(string.sub(all[i + 1], 1, sep - 1))
    if now >= expires then
      redis.call('HDEL', KEYS[1], all[i])
    elseif expires > latest then
      latest = expires
    end
  end
end
if server_clock then
  if permanent then
    redis.call('PERSIST', KEYS[1])
  elseif latest > 0 then
    redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', latest))
  end
end
return 1
