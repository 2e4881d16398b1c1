-- One request shape per wrk run, read from a spec file named after "--":
--
--   wrk -t2 -c32 -d15s --latency -s bench/lua/request.lua http://127.0.0.1:PORT/ -- SPEC
--
-- SPEC has one setting per line, "key value":
--   method  GET | POST | DELETE ...
--   path    /v2/.../tokens/{id}      ({id}: the next id from the ids file)
--   header  Name: value              (repeatable: auth headers, Content-Type, Accept)
--   body    {"description": "bench {n}"}   ({n}: a counter unique to each request)
--   ids     FILE                     (one id a line; walked in order, never repeated
--                                      until the list is used up, split between threads)
--   threads N                        (wrk's -t, so each thread takes every Nth id)
--
-- done() prints one machine-readable line, BENCH_JSON {...}, beside wrk's own report.

local started = 0

function setup(thread)
  thread:set("thread_index", started)
  started = started + 1
end

local spec = { headers = {} }
local ids = {}
local fixed = nil
local position = 0
local stride = 1
local counter = 0

local function read_spec(path)
  for line in io.lines(path) do
    local key, value = line:match("^(%S+) (.*)$")
    if key == "header" then
      local name, header_value = value:match("^([^:]+):%s*(.*)$")
      spec.headers[name] = header_value
    elseif key then
      spec[key] = value
    end
  end
end

function init(args)
  read_spec(args[1])
  if spec.ids then
    for line in io.lines(spec.ids) do
      if #line > 0 then
        ids[#ids + 1] = line
      end
    end
  end
  stride = tonumber(spec.threads or "1")
  position = thread_index or 0
  local varies = spec.path:find("{id}", 1, true) or (spec.body and spec.body:find("{n}", 1, true))
  if not varies then
    fixed = wrk.format(spec.method, spec.path, spec.headers, spec.body)
  end
end

function request()
  if fixed then
    return fixed
  end
  counter = counter + 1
  local path = spec.path
  if #ids > 0 then
    local id = ids[(position % #ids) + 1]
    position = position + stride
    path = (path:gsub("{id}", id))
  end
  local body = spec.body
  if body then
    body = (body:gsub("{n}", (thread_index or 0) .. "-" .. counter))
  end
  return wrk.format(spec.method, path, spec.headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"min": %d, "mean": %.1f, "max": %d, '
      .. '"p50": %d, "p75": %d, "p90": %d, "p99": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99)
  ))
end
