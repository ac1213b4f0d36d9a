-- wrk script for tests/test_cluster.py: asks for recommendations of random MovieLens users, at
-- most one request per connection every `pause` milliseconds (the first argument after --), and
-- counts every answer by status and by the replica that gave it (nginx's X-Served-By: after a
-- retry it lists every address tried, the last one answered). done() prints the counts.
local threads = {}

function setup(thread)
  thread:set("seed", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  pause = tonumber(args[1]) or 0
  math.randomseed(seed * 7919)
  statuses = {}
  replicas = {}
  retried = 0
end

function request()
  local user = math.random(1, 610)
  return wrk.format("GET", "/api/users/" .. user .. "/recommendations?n=10")
end

function delay()
  return pause
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local served = headers["X-Served-By"] or "none"
  local last = served:match("([^,%s]+)%s*$") or "none"
  replicas[last] = (replicas[last] or 0) + 1
  if served:find(",") then
    retried = retried + 1
  end
end

function done(summary, latency, requests)
  local totals = { status = {}, replica = {}, retried = 0 }
  for _, thread in ipairs(threads) do
    for key, count in pairs(thread:get("statuses")) do
      totals.status[key] = (totals.status[key] or 0) + count
    end
    for key, count in pairs(thread:get("replicas")) do
      totals.replica[key] = (totals.replica[key] or 0) + count
    end
    totals.retried = totals.retried + thread:get("retried")
  end
  for key, count in pairs(totals.status) do
    io.write(string.format("count status %s %d\n", key, count))
  end
  for key, count in pairs(totals.replica) do
    io.write(string.format("count replica %s %d\n", key, count))
  end
  io.write(string.format("count retried - %d\n", totals.retried))
  io.write(string.format("latency p50 %.1f p99 %.1f max %.1f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
