--[[ _links: what every link script shares. Not a script of its own: Redis
scripts cannot import, so backends/redis/scripts.py sends this file followed
by the script (the SHA covers both).

ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock
Writers (store) also use KEYS[1] (the link), KEYS[2] (the uid's permanent
links) and ARGV[2] (the service name, field of KEYS[2]).

A link is a string: 'pod' when permanent, 'pod:expires_ms' when temporary.
]]

-- Read TIME once: Redis 7.0 does not freeze it inside a script.
local now, server_clock
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  server_clock = true
else
  now = tonumber(ARGV[1])
end

-- Pod (string) and expiry (nil when permanent) of a link value if it is
-- live, else nil. Native expiry keeps a key alive at its expiry instant, so
-- liveness is decided here, not by whether the key exists.
local function live(value)
  if not value then return nil end
  local sep = string.find(value, ':', 1, true)
  if not sep then return value, nil end
  local expires = tonumber(string.sub(value, sep + 1))
  if now < expires then return string.sub(value, 1, sep - 1), expires end
  return nil
end

local function live_link(key)
  return live(redis.call('GET', key))
end

-- Write the link KEYS[1] -> pod, permanent (seconds < 0) or for N seconds,
-- and keep the permanent-links hash KEYS[2] in step.
local function store(pod, seconds)
  if seconds < 0 then
    redis.call('SET', KEYS[1], pod)  -- a plain SET also drops an old TTL
    redis.call('HSET', KEYS[2], ARGV[2], pod)
    return
  end
  -- '%.0f': Lua 5.1 would print large numbers in exponent form.
  local expires = string.format('%.0f', now + seconds * 1000)
  if server_clock then
    -- Let Redis reclaim the key itself once the link is dead.
    redis.call('SET', KEYS[1], pod .. ':' .. expires, 'PXAT', expires)
  else
    -- A caller's clock may be far from real time: no native expiry.
    redis.call('SET', KEYS[1], pod .. ':' .. expires)
  end
  redis.call('HDEL', KEYS[2], ARGV[2])
end
