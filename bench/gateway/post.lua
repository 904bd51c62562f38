-- wrk script: POST the JSON body in $WRK_BODY_FILE, count requests sent per thread, and print
-- the run's summary as one `WRK_JSON {...}` line (latency in microseconds) for run.py to read.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local path = os.getenv("WRK_BODY_FILE")
  local f = assert(io.open(path, "rb"), "WRK_BODY_FILE not readable: " .. tostring(path))
  local body = f:read("*a")
  f:close()
  sent = 0
  local headers = {["Content-Type"] = "application/json"}
  -- Optional bearer token (LiteLLM's proxy refuses requests without its master key).
  local auth = os.getenv("WRK_AUTH")
  if auth and auth ~= "" then
    headers["Authorization"] = "Bearer " .. auth
  end
  req = wrk.format("POST", nil, headers, body)
end

-- Called before each request is written: a dynamic request only so `sent` can be counted
-- (requests still in flight when wrk stops are sent but not "completed").
function request()
  sent = sent + 1
  return req
end

function done(summary, latency, requests)
  -- wrk's main() calls request() once on the first thread to check that the script builds a
  -- valid HTTP request (script_verify_request); that one is never sent.
  local total = -1
  for _, thread in ipairs(threads) do
    total = total + thread:get("sent")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"sent":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%.1f,"p90":%.1f,"p99":%.1f,"p999":%.1f,"mean":%.1f,"max":%.1f}}\n',
    summary.requests, total, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max))
end
