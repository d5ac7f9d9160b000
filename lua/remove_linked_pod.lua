--[[ remove_linked_pod (and remove_linked_pod_with_id): end the live link, or
keep it as a temporary link for a persist window.

KEYS[1]  the link: string 'pod' (permanent) or 'pod:expires_ms' (temporary)
KEYS[2]  the uid's permanent links: hash service -> pod (same hash slot)
ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock
ARGV[2]  the service name (field of KEYS[2])
ARGV[3]  persist seconds: -1 or 0 delete the link, N > 0 keep it N s as temporary
ARGV[4]  the pod id the live link must point at, in decimal, or '' for any pod

Returns 1 if a live link (to ARGV[4], if given) was found and changed, else 0.
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

local pod = live_link(KEYS[1])
if not pod then
  -- Reclaim a dead link now: under a caller's clock it has no native expiry.
  redis.call('DEL', KEYS[1])
  return 0
end
if ARGV[4] ~= '' and pod ~= ARGV[4] then return 0 end
local seconds = tonumber(ARGV[3])
if seconds > 0 then
  store(pod, seconds)
else
  redis.call('DEL', KEYS[1])
  redis.call('HDEL', KEYS[2], ARGV[2])
end
return 1
