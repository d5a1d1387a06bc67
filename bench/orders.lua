-- wrk script of bench/backendd.sh: POST /api/v1/orders, each request with an
-- Idempotency-Key of its own (the run's prefix, the thread, a counter), so that
-- every request places an order. The token and the body come from the
-- environment (BENCH_TOKEN, BENCH_ORDER), the prefix as the script's argument.
-- SPDX-License-Identifier: MIT
local threads = 0

function setup(thread)
    thread:set("tid", threads)
    threads = threads + 1
end

local prefix, n = "run", 0

function init(args)
    prefix = (args[1] or "run") .. "-" .. tostring(tid)
    wrk.method = "POST"
    wrk.body = os.getenv("BENCH_ORDER")
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
end

function request()
    n = n + 1
    wrk.headers["Idempotency-Key"] = prefix .. "-" .. n
    return wrk.format()
end
