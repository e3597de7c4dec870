-- wrk script of bench/http_bench.sh and bench/http_ab.sh: POST a 10-job
-- workflow (a chain of noop jobs) as user "bench".
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-User-ID"] = "bench"
local jobs = {}
for i = 0, 9 do
  local dep = i > 0 and string.format(',"depends_on":["j%d"]', i - 1) or ''
  jobs[#jobs + 1] = string.format('{"job_id":"j%d","job_type":"noop"%s}', i, dep)
end
wrk.body = '{"name":"bench","jobs":[' .. table.concat(jobs, ",") .. ']}'
