-- wrk script: etcd v3 HTTP/JSON gateway POST <ETCD_PUT_PATH> (default /v3/kv/put) with
-- {"key": base64("bench/<n>"), "value": base64(128 bytes)}, n uniform over a KEYS-key space (default 10 000):
-- the same keys and stored value bytes as put_cairn.lua. Used by kv_put.sh.
local keys = tonumber(os.getenv("KEYS") or "10000")
local value_bytes = tonumber(os.getenv("VALUE_BYTES") or "128")
local path = os.getenv("ETCD_PUT_PATH") or "/v3/kv/put"
local threads = 0
local bodies = {}
local headers = { ["Content-Type"] = "application/json" }

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function sym(n)
  return alphabet:sub(n + 1, n + 1)
end
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    out[#out + 1] = sym(math.floor(n / 262144) % 64) .. sym(math.floor(n / 4096) % 64)
      .. (b and sym(math.floor(n / 64) % 64) or "=") .. (c and sym(n % 64) or "=")
  end
  return table.concat(out)
end

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  math.randomseed(id * 7919 + os.time())
  local value = base64(string.rep("v", value_bytes))
  for i = 0, keys - 1 do
    bodies[i] = '{"key":"' .. base64("bench/" .. i) .. '","value":"' .. value .. '"}'
  end
end

function request()
  return wrk.format("POST", path, headers, bodies[math.random(0, keys - 1)])
end
