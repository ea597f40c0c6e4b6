-- Refresh rotation: each wrk thread owns one token family and follows its chain, one
-- request at a time (-c equal to -t), so every request presents a fresh, unused token.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local tokens = {}
for t in string.gmatch(os.getenv("REFRESH_TOKENS"), "%S+") do table.insert(tokens, t) end
local basic = os.getenv("BASIC")
local next_id = 1
local threads = {}

function setup(thread)
  thread:set("rt", tokens[next_id])
  next_id = next_id + 1
  table.insert(threads, thread)
end

function request()
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Basic " .. basic,
  }, "grant_type=refresh_token&refresh_token=" .. rt)
end

function response(status, headers, body)
  local successor = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
  if successor then rt = successor end
end
