--[[ set_state: overwrite one pod state or one workload state.

KEYS[1]  the states hash: pod id -> state of a service, or service -> workload
         state of a namespace
ARGV[1]  the field: the pod id in decimal, or the service name
ARGV[2]  the state

Returns 1.
]]

redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
