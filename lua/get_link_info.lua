--[[ get_link_info: the live link of (uid, service) with its times.

KEYS[1]  the uid's links: hash service -> link value
ARGV[1]  now in ms from the caller's clock, or '' to use the server's clock
ARGV[2]  the service name

Returns {pod, updated_ms, expires_ms or -1} or nil when there is no live link.
Uses live from _links.lua, sent before this script.
]]

local pod, updated, expires = live(redis.call('HGET', KEYS[1], ARGV[2]))
if not pod then return nil end
return {tonumber(pod), updated, expires or -1}
