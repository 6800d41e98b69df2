-- wrk script: POST one fixed Open Inference Protocol body on every request.
-- WRK_BODY names the file holding the JSON body; WRK_AUTH, when set, is the Authorization header.
local file = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("WRK_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
