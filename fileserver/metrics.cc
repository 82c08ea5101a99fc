// FileServer::MetricsText(): the /-/metrics page, in Prometheus' text
// exposition format (version 0.0.4).  Counters are summed over the workers;
// each worker's counters are single-writer atomics, so the page can be built
// on any loop without stopping the others.
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "aio/file_service.h"
#include "fileserver/server.h"
#include "fileserver/worker.h"
#include "io/service_metrics.h"

namespace kqio {
namespace fileserver {
namespace {

class Page {
 public:
  // Starts a metric family.
  void Family(absl::string_view name, absl::string_view type,
              absl::string_view help) {
    absl::StrAppend(&out_, "# HELP ", name, " ", help, "\n# TYPE ", name,
                    " ", type, "\n");
  }
  void Sample(absl::string_view name, uint64_t value,
              absl::string_view labels = "") {
    if (labels.empty()) {
      absl::StrAppend(&out_, name, " ", value, "\n");
    } else {
      absl::StrAppend(&out_, name, "{", labels, "} ", value, "\n");
    }
  }
  void Sample(absl::string_view name, double value,
              absl::string_view labels) {
    absl::StrAppend(&out_, name, "{", labels, "} ", value, "\n");
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

std::string FileServer::MetricsText() const {
  Page p;
  auto sum = [this](auto get) {
    uint64_t total = 0;
    for (const auto& w : workers_) total += get(*w);
    return total;
  };
  struct Plain {
    const char* name;
    const char* help;
    io::ServiceCounters::Counter WorkerCounters::*field;
  };
  static constexpr Plain kCounters[] = {
      {"kqio_http_connections_accepted_total", "Connections accepted.",
       &WorkerCounters::connections_accepted},
      {"kqio_http_connections_rejected_total",
       "Connections answered 503 over the connection limit.",
       &WorkerCounters::connections_rejected},
      {"kqio_http_connections_closed_total", "Connections closed.",
       &WorkerCounters::connections_closed},
      {"kqio_http_requests_total", "Request heads parsed.",
       &WorkerCounters::requests},
      {"kqio_http_sent_bytes_total", "Response bytes sent, heads included.",
       &WorkerCounters::bytes_sent},
      {"kqio_http_header_timeouts_total",
       "Connections closed for a request head not received in time.",
       &WorkerCounters::header_timeouts},
      {"kqio_http_keepalive_timeouts_total",
       "Idle keep-alive connections closed.",
       &WorkerCounters::keepalive_timeouts},
      {"kqio_http_send_timeouts_total",
       "Connections closed for a response write not completing in time.",
       &WorkerCounters::send_timeouts},
      {"kqio_http_sendfile_chunks_total",
       "Body chunks sent with sendfile (pages cached).",
       &WorkerCounters::sendfile_chunks},
      {"kqio_http_read_chunks_total",
       "Body chunks read through aio (pages not cached).",
       &WorkerCounters::read_chunks},
      {"kqio_http_truncated_bodies_total",
       "Responses cut short because the file shrank or a read failed.",
       &WorkerCounters::truncated_bodies},
  };
  for (const Plain& c : kCounters) {
    p.Family(c.name, "counter", c.help);
    p.Sample(c.name, sum([&c](const Worker& w) {
               return (w.counters().*c.field).Get();
             }));
  }

  p.Family("kqio_http_responses_total", "counter", "Responses by status.");
  for (size_t i = 0; i < kCountedStatuses.size(); ++i) {
    uint64_t n = sum(
        [i](const Worker& w) { return w.counters().responses[i].Get(); });
    if (n == 0) continue;
    int code = kCountedStatuses[i];
    p.Sample("kqio_http_responses_total", n,
             code == 0 ? std::string("code=\"other\"")
                       : absl::StrCat("code=\"", code, "\""));
  }
  p.Family("kqio_http_connections_open", "gauge", "Connections open now.");
  p.Sample("kqio_http_connections_open",
           sum([](const Worker& w) { return w.open_connections(); }));

  // The loops' operation classes, with latency quantiles.
  io::Metrics total;
  for (const auto& w : workers_) {
    io::Metrics m = w->service().metrics();
    total.loop_iterations += m.loop_iterations;
    total.stale_events_dropped += m.stale_events_dropped;
    for (size_t c = 0; c < io::kNumOpClasses; ++c) {
      total.ops[c].started += m.ops[c].started;
      total.ops[c].completed += m.ops[c].completed;
      total.ops[c].failed += m.ops[c].failed;
      total.ops[c].cancelled += m.ops[c].cancelled;
      total.ops[c].latency.Merge(m.ops[c].latency);
    }
  }
  p.Family("kqio_loop_iterations_total", "counter", "Event loop iterations.");
  p.Sample("kqio_loop_iterations_total", total.loop_iterations);
  p.Family("kqio_stale_events_dropped_total", "counter",
           "Kernel events dropped because their registration was gone.");
  p.Sample("kqio_stale_events_dropped_total", total.stale_events_dropped);
  p.Family("kqio_ops_total", "counter",
           "Operations by class and outcome (started, ok, failed, "
           "cancelled).");
  for (size_t c = 0; c < io::kNumOpClasses; ++c) {
    const io::OpMetrics& m = total.ops[c];
    if (m.started == 0 && m.completed == 0) continue;
    const char* name = io::OpClassName(static_cast<io::OpClass>(c));
    p.Sample("kqio_ops_total", m.started,
             absl::StrCat("class=\"", name, "\",outcome=\"started\""));
    p.Sample("kqio_ops_total", m.completed,
             absl::StrCat("class=\"", name, "\",outcome=\"ok\""));
    p.Sample("kqio_ops_total", m.failed,
             absl::StrCat("class=\"", name, "\",outcome=\"failed\""));
    p.Sample("kqio_ops_total", m.cancelled,
             absl::StrCat("class=\"", name, "\",outcome=\"cancelled\""));
  }
  p.Family("kqio_op_latency_seconds", "summary",
           "Operation latency, start to completion callback (bucket upper "
           "edges).");
  for (size_t c = 0; c < io::kNumOpClasses; ++c) {
    const auto& lat = total.ops[c].latency;
    if (lat.count == 0) continue;
    const char* name = io::OpClassName(static_cast<io::OpClass>(c));
    for (double q : {0.5, 0.99}) {
      p.Sample("kqio_op_latency_seconds",
               absl::ToDoubleSeconds(lat.Percentile(q)),
               absl::StrCat("class=\"", name, "\",quantile=\"", q, "\""));
    }
  }

  // Files: the page-cache fast path and the ladder.
  uint64_t hits = 0, misses = 0, fallbacks = 0;
  for (const auto& w : workers_) {
    aio::FileServiceMetrics m = w->files().metrics();
    hits += m.fast_path_hits;
    misses += m.fast_path_misses;
    for (const auto& c : m.classes) fallbacks += c.fallbacks;
  }
  p.Family("kqio_file_fast_path_hits_total", "counter",
           "Reads served whole from the page cache on the loop.");
  p.Sample("kqio_file_fast_path_hits_total", hits);
  p.Family("kqio_file_fast_path_misses_total", "counter",
           "Reads the page cache could not serve (sent to an engine).");
  p.Sample("kqio_file_fast_path_misses_total", misses);
  p.Family("kqio_file_fallbacks_total", "counter",
           "File operations an engine refused, run on the pool instead.");
  p.Sample("kqio_file_fallbacks_total", fallbacks);

  // The open-file cache.
  p.Family("kqio_open_file_cache_total", "counter",
           "Open-file cache lookups by outcome.");
  uint64_t c_hits = sum([](const Worker& w) { return w.cache_stats().hits; });
  uint64_t c_miss = sum([](const Worker& w) { return w.cache_stats().misses; });
  uint64_t c_coal =
      sum([](const Worker& w) { return w.cache_stats().coalesced; });
  p.Sample("kqio_open_file_cache_total", c_hits, "outcome=\"hit\"");
  p.Sample("kqio_open_file_cache_total", c_miss, "outcome=\"miss\"");
  p.Sample("kqio_open_file_cache_total", c_coal, "outcome=\"coalesced\"");
  p.Family("kqio_open_file_cache_entries", "gauge",
           "Entries in the open-file caches.");
  p.Sample("kqio_open_file_cache_entries",
           sum([](const Worker& w) { return w.cache_stats().entries; }));
  return p.Take();
}

}  // namespace fileserver
}  // namespace kqio
