--[[ _links: what every link script shares. Not a script of its own: Redis
scripts cannot import, so backends/redis/scripts.py sends this file followed
by the script (the SHA covers both).

ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock

A uid's links live in one hash per (namespace, uid): field = service, value
  'pod:updated_ms'              a permanent link
  'pod:updated_ms:expires_ms'   a temporary link
The pod index of (namespace, service, pod) is a sorted set, every score 0,
members the uids linked there (walked in lexical order); it may over-report
(dead or moved links), never under-report. 'ix' below is the index key prefix
'P{ns:svc}:ix': pod p's index is ix..':'..p, ix..'p' the set of pods that have
an index, ix..'w' the pending index steps of a cluster (see index_add.lua).
]]

-- Read TIME at most once: Redis 7.0 does not freeze it inside a script.
local server_ms
local function server_time()
  if not server_ms then
    local t = redis.call('TIME')
    server_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return server_ms
end

local now, server_clock
if ARGV[1] == '' then
  now = server_time()
  server_clock = true
else
  now = tonumber(ARGV[1])
end

-- '%.0f': Lua 5.1 would print large numbers in exponent form.
local function ms(x) return string.format('%.0f', x) end

-- Pod (string), updated and expires (nil when permanent) of a link value.
local function parse(value)
  local a = string.find(value, ':', 1, true)
  local b = string.find(value, ':', a + 1, true)
  if not b then
    return string.sub(value, 1, a - 1), tonumber(string.sub(value, a + 1)), nil
  end
  return string.sub(value, 1, a - 1), tonumber(string.sub(value, a + 1, b - 1)),
    tonumber(string.sub(value, b + 1))
end

-- As parse, but nil when the value is absent or dead. Native expiry keeps a
-- key alive at its expiry instant, so liveness is decided here (now <
-- expires), never by whether the key exists.
local function live(value)
  if not value then return nil end
  local pod, updated, expires = parse(value)
  if expires and now >= expires then return nil end
  return pod, updated, expires
end

-- Drop uid from pod's index (standalone: inside the link script).
local function unindex(ix, pod, uid)
  local key = ix .. ':' .. pod
  redis.call('ZREM', key, uid)
  if redis.call('EXISTS', key) == 0 then redis.call('SREM', ix .. 'p', pod) end
end

local function index(ix, pod, uid)
  redis.call('ZADD', ix .. ':' .. pod, 0, uid)
  redis.call('SADD', ix .. 'p', pod)
end

-- One link, opened for writing: key (the uid's hash), field (service), uid,
-- ix (index prefix; '' on a cluster, where the caller keeps the index in
-- separate steps), and what the field held: old (pod of the stored value,
-- live or dead: the index may hold the uid there), pod/updated/expires (the
-- live link, if any).
local function open(key, field, uid, ix)
  local raw = redis.call('HGET', key, field)
  local link = {key = key, field = field, uid = uid, ix = ix, dirty = false}
  if raw then
    link.old = parse(raw)
    link.pod, link.updated, link.expires = live(raw)
  end
  return link
end

-- Write the link -> pod, permanent (seconds < 0) or for N s, updated now.
local function store(link, pod, seconds)
  local value = pod .. ':' .. ms(now)
  if seconds >= 0 then value = value .. ':' .. ms(now + seconds * 1000) end
  redis.call('HSET', link.key, link.field, value)
  if link.ix ~= '' and pod ~= link.pod then
    if link.old and link.old ~= pod then unindex(link.ix, link.old, link.uid) end
    index(link.ix, pod, link.uid)
  end
  if link.old ~= pod then link.moved = link.old end
  link.dirty = true
end

local function delete(link)
  redis.call('HDEL', link.key, link.field)
  if link.old then
    if link.ix ~= '' then unindex(link.ix, link.old, link.uid) end
    link.moved = link.old
  end
  link.dirty = true
end

-- After a write: drop the hash's dead fields and, on the server clock, give
-- the hash a native expiry when it holds only temporary links (so Redis
-- reclaims it once all are dead) or none when it holds a permanent one. A
-- caller's clock may be far from real time: no native expiry then.
local function finish(link)
  if not link.dirty then return end
  local all = redis.call('HGETALL', link.key)
  local permanent, latest = false, 0
  for i = 1, #all, 2 do
    local _, _, expires = parse(all[i + 1])
    if not expires then
      permanent = true
    elseif now >= expires then
      redis.call('HDEL', link.key, all[i])
    elseif expires > latest then
      latest = expires
    end
  end
  if server_clock then
    if permanent then
      redis.call('PERSIST', link.key)
    elseif latest > 0 then
      redis.call('PEXPIREAT', link.key, ms(latest))
    end
  end
end
