-- wrk script for bench/fileserver_vs_nginx.sh.
--
-- Always: done() prints one machine-readable line,
--   FSBENCH requests=N seconds=S bytes=B errors=E p50_us=X p99_us=Y max_us=Z
-- (errors = connect + read + write + timeout + non-2xx/3xx statuses), so the
-- script needs no parsing of wrk's unit-suffixed text.
--
-- With FSBENCH_COLD_FILES=N in the environment (read when the script loads,
-- because wrk decides then whether requests are static): every request asks
-- for a random one of /cold/c0.bin .. /cold/c<N-1>.bin.  Without it wrk keeps
-- its pre-built static request, so the measuring wrk pays no Lua per request.

local cold_files = tonumber(os.getenv("FSBENCH_COLD_FILES") or "")

if cold_files and cold_files > 0 then
  local paths = nil
  function request()
    if not paths then
      -- Built on first use: wrk adds the Host header to wrk.headers only
      -- after the script has loaded.  One seed per thread (os.time() alone
      -- would give every thread the same sequence).
      paths = {}
      for i = 0, cold_files - 1 do
        paths[#paths + 1] = wrk.format("GET", "/cold/c" .. i .. ".bin")
      end
      math.randomseed(os.time() + math.floor(os.clock() * 1e6))
    end
    return paths[math.random(#paths)]
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout + e.status
  io.write(string.format(
    "FSBENCH requests=%d seconds=%.3f bytes=%d errors=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration / 1e6, summary.bytes, errors,
    latency:percentile(50), latency:percentile(99), latency.max))
end
