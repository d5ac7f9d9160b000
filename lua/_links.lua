--[[ _links: what every link script shares: the time and reading a link. Not
a script of its own: Redis scripts cannot import, so the backend sends this
file followed by the script (the SHA covers both); scripts that write links
get _store.lua too.

ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock

A uid's links live in one hash per (namespace, uid): field = service, value
  'pod:updated_ms'              a permanent link
  'pod:updated_ms:expires_ms'   a temporary link
The pod index of (namespace, service, pod) is a sorted set, every score 0,
members the uids linked there (walked in lexical order); it may over-report
(dead or moved links), never under-report. 'ix' below is the index key prefix
'P{ns:svc}:ix': pod p's index is ix..':'..p, ix..'p' the set of pods that have
an index, ix..'t:'..p the temporary links among p's entries (standalone;
score = expiry), ix..'w' the pending index steps of a cluster (index_add.lua).
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

local server_clock = ARGV[1] == ''
local caller_now = tonumber(ARGV[1])  -- nil on the server clock

-- Now in ms: the caller's, or the server's read on first use (TIME is a
-- call of its own, and a script that meets only permanent links never needs
-- it). Any instant inside the script is as good: the script is atomic.
local function clock()
  return caller_now or server_time()
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
  if expires and clock() >= expires then return nil end
  return pod, updated, expires
end

-- The pod (string) of a live link value, else nil: live() for readers that
-- need only the pod (batch reads), without parsing the rest.
local function live_pod(value)
  if not value then return nil end
  local a = string.find(value, ':', 1, true)
  local b = string.find(value, ':', a + 1, true)
  if b and clock() >= tonumber(string.sub(value, b + 1)) then return nil end
  return string.sub(value, 1, a - 1)
end
