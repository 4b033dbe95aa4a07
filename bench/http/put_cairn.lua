-- wrk script: Consul KV PUT /v1/kv/bench/<n>, n uniform over a KEYS-key space (default 10 000),
-- a 128-byte value. Used by kv_put.sh; wrk itself counts non-2xx answers.
local keys = tonumber(os.getenv("KEYS") or "10000")
local value_bytes = tonumber(os.getenv("VALUE_BYTES") or "128")
local threads = 0
local paths = {}

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  math.randomseed(id * 7919 + os.time())
  for i = 0, keys - 1 do
    paths[i] = "/v1/kv/bench/" .. i
  end
end

wrk.method = "PUT"
wrk.body = string.rep("v", value_bytes)
wrk.headers["Content-Type"] = "application/octet-stream"

function request()
  return wrk.format(nil, paths[math.random(0, keys - 1)])
end
