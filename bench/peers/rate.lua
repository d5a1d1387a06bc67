-- wrk script of bench/peers.sh: requests at a fixed pace. Each connection waits
-- the script's argument (whole milliseconds: wrk's timers round down) before
-- each request, so that C connections offer about C * 1000 / ARG requests a
-- second whatever the server's latency (while it stays well under the pause).
-- Prints, when done,
--   RATE <req/s> <p50 us> <p99 us> <p99.9 us>
-- SPDX-License-Identifier: MIT
local pause = 10

function init(args)
    pause = tonumber(args[1]) or pause
end

function delay()
    return pause
end

function done(summary, latency, requests)
    io.write(string.format("RATE %.1f %.1f %.1f %.1f\n", summary.requests / (summary.duration / 1e6),
        latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
