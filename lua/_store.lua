--[[ _store: writing links and keeping the pod indexes (after _links.lua).
Sent before the scripts that write links, like _links.lua; see its header for
the value format and the index keys.
]]

-- Drop uid from pod's index (standalone: inside the link script), and from
-- its temporary entries ix..'t:'..pod (score: expiry), which let counts skip
-- the entries of dead temporary links without reading them.
local function unindex(ix, pod, uid)
  local key = ix .. ':' .. pod
  redis.call('ZREM', key, uid)
  redis.call('ZREM', ix .. 't:' .. pod, uid)
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
  local old, updated, expires
  if raw then old, updated, expires = parse(raw) end
  -- One constructor with every field the writers set: no rehash as it grows.
  local link = {key = key, field = field, uid = uid, ix = ix, dirty = false,
    old = old, old_temporary = expires ~= nil, pod = old, updated = updated,
    expires = expires, only = nil, moved = nil}
  if expires and clock() >= expires then
    -- Dead (as live() decides): the index may still hold the uid at old.
    link.pod, link.updated, link.expires = nil, nil, nil
  end
  return link
end

-- Write the link -> pod, permanent (seconds < 0) or for N s, updated now.
local function store(link, pod, seconds)
  local now = clock()
  local value = pod .. ':' .. ms(now)
  if seconds >= 0 then value = value .. ':' .. ms(now + seconds * 1000) end
  redis.call('HSET', link.key, link.field, value)
  link.only = -1
  if seconds >= 0 then link.only = now + seconds * 1000 end
  if link.ix ~= '' then
    if pod ~= link.pod then
      if link.old and link.old ~= pod then unindex(link.ix, link.old, link.uid) end
      index(link.ix, pod, link.uid)
    end
    if seconds >= 0 then
      redis.call('ZADD', link.ix .. 't:' .. pod, ms(now + seconds * 1000), link.uid)
    elseif link.old_temporary or not link.old then
      -- (No field: a temporary link Redis expired may have left its entry.)
      redis.call('ZREM', link.ix .. 't:' .. pod, link.uid)
    end
  end
  if link.old ~= pod then link.moved = link.old end
  link.dirty = true
end

local function delete(link)
  redis.call('HDEL', link.key, link.field)
  link.only = nil
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
  if link.only and redis.call('HLEN', link.key) == 1 then
    -- The hash holds just the link written (the usual case): no dead field
    -- to look for, its expiry is the link's.
    if server_clock then
      if link.only < 0 then
        redis.call('PERSIST', link.key)
      else
        redis.call('PEXPIREAT', link.key, ms(link.only))
      end
    end
    return
  end
  local all = redis.call('HGETALL', link.key)
  local now = clock()
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
