-- GET with a bearer token taken from the TOKEN environment variable.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local token = os.getenv("TOKEN")
wrk.headers["Authorization"] = "Bearer " .. token
