-- One pre-signed DPoP proof per request (bench/dpop_proofs.rs wrote them; a proof is good
-- for one request). wrk thread i spends the proofs in PROOFS.i, in order; when they run
-- out its next requests go to a path that answers 404 (the row shows them as refused:
-- its req/s is then wrong, wrk keeps timing until -d ends) and the thread stops once
-- one of those answers is in. METHOD (default GET); TOKEN, if set, is sent as
-- `Authorization: DPoP <token>`; BASIC (space-separated, one per thread, round robin) as
-- HTTP Basic credentials; BODY as a form.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local prefix = os.getenv("PROOFS")
local method = os.getenv("METHOD") or "GET"
local token = os.getenv("TOKEN")
local body = os.getenv("BODY")
local basics = {}
for b in string.gmatch(os.getenv("BASIC") or "", "%S+") do table.insert(basics, b) end
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  proofs = {}
  for line in io.lines(prefix .. "." .. id) do proofs[#proofs + 1] = line end
  used = 0
  headers = {}
  if token and token ~= "" then headers["Authorization"] = "DPoP " .. token end
  if #basics > 0 then headers["Authorization"] = "Basic " .. basics[id % #basics + 1] end
  if body and body ~= "" then headers["Content-Type"] = "application/x-www-form-urlencoded" end
end

function request()
  used = used + 1
  local proof = proofs[used]
  if proof == nil then
    if ran_out_seen then wrk.thread:stop() end
    return wrk.format("GET", "/bench-dpop-proofs-ran-out")
  end
  headers["DPoP"] = proof
  return wrk.format(method, nil, headers, body)
end

function response(status, headers, body)
  if status == 404 then ran_out_seen = true end
end
