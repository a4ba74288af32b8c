#include "bench/harness.hpp"
#include "bench/peers.hpp"
#include "workloads/blocking_stall/blocking_stall.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <thread>

namespace concbench {

namespace {

using namespace blocking_stall;

// One iteration is one whole open-loop run: its latencies are the samples.
struct Record {
  Measurements measured;
  Outcome outcome;
  std::chrono::duration<double> wall{};
};

std::string cell_name(std::string_view model, const Params& p, unsigned workers) {
  return benchmark_name("blocking_stall", model,
                        {{"kind", std::string(kind_name(p.kind))},
                         {"offload", std::string(offload_name(p.offload))},
                         {"work_us", std::to_string(p.work_us)},
                         {"rate", std::to_string(static_cast<long>(p.rate))}},
                        workers);
}

Outcome expected(const Params& p) {
  static std::map<Params, Outcome> cache;
  if (auto it = cache.find(p); it != cache.end()) return it->second;
  return cache.emplace(p, reference(p)).first->second;
}

// A peer's results are checked one by one: a sum alone would let two swapped pass.
const std::vector<std::uint64_t>& expected_results(const Params& p) {
  static std::map<Params, std::vector<std::uint64_t>> cache;
  if (auto it = cache.find(p); it != cache.end()) return it->second;
  return cache.emplace(p, results(p)).first->second;
}

void add_counters(benchmark::State& state, const Params& p, Record& record, unsigned workers) {
  auto add = [&state](const std::string& prefix, LatencyRecorder& recorder) {
    Percentiles q = recorder.percentiles();
    state.counters[prefix + "_p50_us"] = q.p50_us;
    state.counters[prefix + "_p90_us"] = q.p90_us;
    state.counters[prefix + "_p99_us"] = q.p99_us;
    state.counters[prefix + "_p999_us"] = q.p999_us;
    state.counters[prefix + "_max_us"] = q.max_us;
  };
  add("light", record.measured.light);
  add("heavy", record.measured.heavy);
  // Inline only: how long the heavy call really held its thread.
  if (record.measured.stall.count() > 0) state.counters["stall_p50_us"] = record.measured.stall.percentile_us(0.5);
  if (record.measured.lag.count() > 0) {  // the C++ models' 1 ms ticker
    state.counters["lag_p99_us"] = record.measured.lag.percentile_us(0.99);
    state.counters["lag_max_us"] = record.measured.lag.percentile_us(1.0);
  }
  const Outcome& o = record.outcome;
  const double seconds = record.wall.count();
  // What explains a stall that no code path does: the share of the run the
  // threads that ran light requests were ready but waited for a CPU, and how
  // often one was taken off its CPU (absent where Linux keeps no such record).
  if (const auto& wait = record.measured.serving_wait) {
    const double thread_seconds = seconds * static_cast<double>(record.measured.serving_threads.size());
    state.counters["cpu_wait_share"] = std::chrono::duration<double>(wait->runq_wait).count() / thread_seconds;
    state.counters["involuntary_switches"] = static_cast<double>(wait->involuntary_switches);
  }
  state.counters["scheduled"] = static_cast<double>(schedule(p).size());
  state.counters["completed"] = static_cast<double>(o.light + o.heavy);
  state.counters["failed"] = static_cast<double>(o.failed);
  state.counters["light_per_s"] = static_cast<double>(o.light) / seconds;
  state.counters["heavy_per_s"] = static_cast<double>(o.heavy) / seconds;
  state.counters["workers"] = workers;
  // What the report needs to predict how far inline stalls lift the light p99.
  state.counters["heavy_every_us"] = std::chrono::duration<double, std::micro>(heavy_interval(p)).count();
}

// Each run is one sample of the cell; the report compares cells over their runs, so
// every cell runs at least repetitions(suite) times.
template <class Run>
void register_cell(const std::string& name, int runs, const Params& p, unsigned workers,
                   std::shared_ptr<Record> record, Run run_once) {
  register_verified(
      name, run_once, [p] { return expected(p); },
      [p, record, workers](benchmark::State& state) { add_counters(state, p, *record, workers); })
      ->Iterations(1)
      ->Repetitions(runs);
}

// One run of a peer: it gets the schedule and serves it; concbench folds its
// requests into an outcome and latencies exactly as its own models' (record()).
Outcome run_peer(const peers::Peer& peer, const Params& p, unsigned workers, Measurements& m,
                 std::chrono::duration<double>& wall) {
  const std::vector<Request> requests = schedule(p);
  const std::vector<std::uint64_t>& want = expected_results(p);
  std::string text;
  for (const Request& r : requests) text += std::to_string(r.arrival.count()) + (r.heavy ? " 1\n" : " 0\n");
  const peers::TempFile schedule_file(text);
  const auto reply = peers::run(peer,
                                {"blocking_stall", "--schedule", schedule_file.path(), "--corpus", peers::corpus_file(),
                                 "--kind", std::string(kind_name(p.kind)), "--offload",
                                 std::string(offload_name(p.offload)), "--work-us", std::to_string(p.work_us),
                                 "--cpu-bytes", std::to_string(p.cpu_bytes), "--workers", std::to_string(workers)},
                                std::chrono::ceil<std::chrono::seconds>(std::chrono::seconds(60) + 10 * p.duration),
                                workers);
  Outcome outcome;
  peers::Ids seen(peer, requests.size());
  std::chrono::nanoseconds last_end{0};
  std::size_t stalls = 0;
  for (const std::string& line : reply.lines) {
    const auto w = peers::words(line);
    if (w.size() == 2 && w[0] == "stall") {
      m.stall.record(std::chrono::nanoseconds(peers::parse_u64(w[1], line)));
      ++stalls;
      continue;
    }
    if (w.size() != 4 || w[0] != "request") peers::bad_line(peer, line, "unexpected line");
    const std::uint64_t id = seen.end(peers::parse_u64(w[1], line), line);
    const std::chrono::nanoseconds latency(peers::parse_u64(w[2], line));
    std::optional<std::uint64_t> result;
    if (w[3] != "failed") result = peers::parse_u64(w[3], line);
    if (result && *result != want[id]) peers::bad_line(peer, line, "not what this request computes");
    record(requests[id], latency, result, outcome, m);
    last_end = std::max(last_end, requests[id].arrival + latency);
  }
  const auto heavy = static_cast<std::size_t>(std::count_if(requests.begin(), requests.end(), [](auto& r) { return r.heavy; }));
  if (stalls != (p.offload == Offload::inline_call ? heavy : 0))
    throw std::runtime_error("peer " + peer.name + ": " + std::to_string(stalls) + " stall lines for " +
                             std::to_string(heavy) + " heavy requests " + std::string(offload_name(p.offload)));
  // From the start of the schedule to the last request's end: the peer's own start-up is not the run.
  wall = last_end;
  return outcome;  // a request never reported is missing from the counts, which the reference catches
}

// Whether a peer runs p's kind and offload: in --full every offload it has; else
// where its language's guidance sends that kind (and inline beside it, and Go, whose
// goroutines are its answer to both kinds).
bool peer_offloads(const peers::Peer& peer, const Params& p, Suite suite) {
  const std::string& guidance = p.kind == Kind::cpu ? peer.cpu_guidance : peer.sleep_guidance;
  if (p.offload == Offload::inline_call) return peer.goroutines || suite == Suite::full || !guidance.empty();
  const std::string offload(offload_name(p.offload));
  if (suite != Suite::full) return offload == guidance;
  return std::find(peer.offloads.begin(), peer.offloads.end(), offload) != peer.offloads.end();
}

}  // namespace

void register_blocking_stall(Runtimes& runtimes, const Options& options, double sha256_bytes_per_second) {
  for (Model model : kModels) {
    if (!wants(options, model)) continue;
    for (const Params& p : parameter_sets(options.suite, model, runtimes.workers, sha256_bytes_per_second)) {
      auto record = std::make_shared<Record>();
      register_cell(cell_name(model_name(model), p, runtimes.workers),
                    std::max(options.repetitions, repetitions(options.suite)), p, runtimes.workers, record,
                    [&runtimes, model, p, record] {
                      record->measured = {};
                      auto start = std::chrono::steady_clock::now();
                      record->outcome = run(model, runtimes, p, record->measured);
                      record->wall = std::chrono::steady_clock::now() - start;
                      return record->outcome;
                    });
    }
  }

  if (options.parallel_only) return;
  // The peers run event_loop's cells that peer_runs() keeps and they can offload to,
  // with kind:cpu sized by their own SHA-256: work_us is as long in every language.
  // Go has no loop: each request is a goroutine, run with one P and with one per core
  // (Go's default; the workers key says how many).
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  for (const peers::Peer& peer : peers::all()) {
    if (!peer.missing.empty() || !peer.sha256_error.empty()) continue;
    std::vector<unsigned> procs{runtimes.workers};
    if (peer.goroutines) procs = cores > 1 ? std::vector{1u, cores} : std::vector{1u};
    for (unsigned workers : procs)
      for (const Params& p :
           parameter_sets(options.suite, Model::event_loop, runtimes.workers, peer.sha256_bytes_per_s)) {
        if (!peer_offloads(peer, p, options.suite) || !peer_runs(options.suite, p)) continue;
        // Go answers by its rise over its floor at the largest work: 100 µs adds nothing there.
        if (peer.goroutines && options.suite == Suite::standard && p.work_us == 100) continue;
        auto record = std::make_shared<Record>();
        register_cell(cell_name(peer.model(), p, workers),
                      std::max(options.repetitions, peer_repetitions(options.suite)), p, workers, record,
                      [&peer, p, workers, record] {
                        record->measured = {};
                        record->outcome = run_peer(peer, p, workers, record->measured, record->wall);
                        return record->outcome;
                      });
      }
  }
}

}  // namespace concbench
