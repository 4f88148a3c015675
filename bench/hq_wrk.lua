-- wrk script for bench/hq_wrk.py: POST /v1/orders, POST /v1/heartbeat or GET /v1/catalog.
-- Settings come from the environment: HQ_BENCH_MODE (orders|heartbeat|catalog),
-- HQ_BENCH_TOKENS (file with one licence token a line), HQ_BENCH_BATCH (orders per request),
-- HQ_BENCH_RUN (a prefix that keeps order ids unique across runs).

local counter = 1
local threads = {}

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  threads[#threads + 1] = thread
end

function response(status, headers, body)
  if status >= 300 and status ~= 304 then
    errors = errors .. status .. ":" .. string.sub(body or "", 1, 160) .. "\n"
  end
end

function init(args)
  mode = os.getenv("HQ_BENCH_MODE") or "orders"
  batch = tonumber(os.getenv("HQ_BENCH_BATCH") or "1")
  run = os.getenv("HQ_BENCH_RUN") or "run"
  tokens = {}
  for line in io.lines(os.getenv("HQ_BENCH_TOKENS")) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  n = 0
  errors = ""
  created = os.date("!%Y-%m-%dT%H:%M:%SZ")
end

local function order(id, j)
  return string.format(
    '{"order_id":"%s-%d","sku":"game-0","quantity":1,"unit_price_cents":990,"currency":"CNY",' ..
    '"created_at":"%s","buyer":{"account":"acct-%s-%d","contact":"c-%s-%d@example.cn",' ..
    '"ip":"10.%d.%d.%d","region":"CN"}}',
    id, j, created, id, j, id, j, n % 250, j % 250, tid % 250)
end

function request()
  n = n + 1
  local token = tokens[(n * 7 + tid) % #tokens + 1]
  local headers = {["Authorization"] = "Bearer " .. token}
  if mode == "heartbeat" then
    headers["Content-Type"] = "application/json"
    local body = string.format('{"version":"0.1.0","applied_seq":0,"health":{"db":"ok"},"counters":{"orders_total":%d}}', n)
    return wrk.format("POST", "/v1/heartbeat", headers, body)
  elseif mode == "catalog" then
    return wrk.format("GET", "/v1/catalog?limit=500", headers)
  end
  local id = string.format("%s-%d-%d", run, tid, n)
  local parts = {}
  for j = 1, batch do parts[j] = order(id, j) end
  headers["Content-Type"] = "application/json"
  headers["Idempotency-Key"] = id
  return wrk.format("POST", "/v1/orders", headers, '{"orders":[' .. table.concat(parts, ",") .. ']}')
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    local e = t:get("errors")
    if e and #e > 0 then io.stderr:write(string.sub(e, 1, 2000)) end
  end
  io.write(string.format("RESULT requests=%d duration_us=%d status_errors=%d socket_errors=%d " ..
    "p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
