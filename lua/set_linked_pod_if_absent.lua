--[[ set_linked_pod_if_absent: keep the live link (refreshing a temporary one)
or create it.

KEYS[1]  the link: string 'pod' (permanent) or 'pod:expires_ms' (temporary)
KEYS[2]  the uid's permanent links: hash service -> pod (same hash slot)
ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock
ARGV[2]  the service name (field of KEYS[2])
ARGV[3]  the pod id to link when there is no live link, in decimal
ARGV[4]  persist seconds: -1 permanent, N > 0 temporary for N s; also the new
         lifetime of a live temporary link

Returns the pod now linked (integer).
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

-- Pod (string) and expiry (nil when permanent) of the live link, or nil.
-- Native expiry keeps a key alive at its expiry instant, so liveness is
-- decided here, not by whether the key exists.
local function live_link(key)
  local value = redis.call('GET', key)
  if not value then return nil end
  local sep = string.find(value, ':', 1, true)
  if not sep then return value, nil end
  local expires = tonumber(string.sub(value, sep + 1))
  if now < expires then return string.sub(value, 1, sep - 1), expires end
  return nil
end

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

local pod, expires = live_link(KEYS[1])
if not pod then
  store(ARGV[3], tonumber(ARGV[4]))
  return tonumber(ARGV[3])
end
-- A temporary link keeps its pod but gets the new lifetime; a permanent one stays.
if expires then store(pod, tonumber(ARGV[4])) end
return tonumber(pod)
