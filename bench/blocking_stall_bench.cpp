#include "bench/harness.hpp"
#include "workloads/blocking_stall/blocking_stall.hpp"

#include <algorithm>
#include <map>
#include <memory>

namespace concbench {

void register_blocking_stall(Runtimes& runtimes, const Options& options, double sha256_bytes_per_second) {
  using namespace blocking_stall;
  for (Model model : kModels) {
    if (!wants(options, model)) continue;
    for (const Params& p : parameter_sets(options.suite, model, runtimes.workers, sha256_bytes_per_second)) {
      std::string name = benchmark_name("blocking_stall", model,
                                        {{"kind", std::string(kind_name(p.kind))},
                                         {"offload", std::string(offload_name(p.offload))},
                                         {"work_us", std::to_string(p.work_us)},
                                         {"rate", std::to_string(static_cast<long>(p.rate))}},
                                        runtimes.workers);
      // One iteration is one whole open-loop run: its latencies are the samples.
      struct Record {
        Measurements measured;
        Outcome outcome;
        std::chrono::duration<double> wall{};
      };
      auto record = std::make_shared<Record>();
      auto run_once = [&runtimes, model, p, record] {
        record->measured = {};
        auto start = std::chrono::steady_clock::now();
        record->outcome = run(model, runtimes, p, record->measured);
        record->wall = std::chrono::steady_clock::now() - start;
        return record->outcome;
      };
      auto expected = [p] {
        static std::map<Params, Outcome> cache;
        if (auto it = cache.find(p); it != cache.end()) return it->second;
        return cache.emplace(p, reference(p)).first->second;
      };
      auto counters = [p, record, &runtimes](benchmark::State& state) {
        auto add = [&state](const std::string& prefix, LatencyRecorder& recorder) {
          Percentiles q = recorder.percentiles();
          state.counters[prefix + "_p50_us"] = q.p50_us;
          state.counters[prefix + "_p90_us"] = q.p90_us;
          state.counters[prefix + "_p99_us"] = q.p99_us;
          state.counters[prefix + "_p999_us"] = q.p999_us;
          state.counters[prefix + "_max_us"] = q.max_us;
        };
        add("light", record->measured.light);
        add("heavy", record->measured.heavy);
        // Inline only: how long the heavy call really held its thread.
        if (record->measured.stall.count() > 0)
          state.counters["stall_p50_us"] = record->measured.stall.percentile_us(0.5);
        state.counters["lag_p99_us"] = record->measured.lag.percentile_us(0.99);
        state.counters["lag_max_us"] = record->measured.lag.percentile_us(1.0);
        const Outcome& o = record->outcome;
        const double seconds = record->wall.count();
        // What explains a stall that no code path does: the share of the run the
        // threads that ran light requests were ready but waited for a CPU, and how
        // often one was taken off its CPU (absent where Linux keeps no such record).
        if (const auto& wait = record->measured.serving_wait) {
          const double thread_seconds = seconds * static_cast<double>(record->measured.serving_threads.size());
          state.counters["cpu_wait_share"] = std::chrono::duration<double>(wait->runq_wait).count() / thread_seconds;
          state.counters["involuntary_switches"] = static_cast<double>(wait->involuntary_switches);
        }
        state.counters["scheduled"] = static_cast<double>(schedule(p).size());
        state.counters["completed"] = static_cast<double>(o.light + o.heavy);
        state.counters["failed"] = static_cast<double>(o.failed);
        state.counters["light_per_s"] = static_cast<double>(o.light) / seconds;
        state.counters["heavy_per_s"] = static_cast<double>(o.heavy) / seconds;
        state.counters["workers"] = runtimes.workers;
        // What the report needs to predict how far inline stalls lift the light p99.
        state.counters["heavy_every_us"] = std::chrono::duration<double, std::micro>(heavy_interval(p)).count();
      };
      // Each run is one sample of the cell; the report compares cells over their
      // runs, so every cell runs at least repetitions(suite) times.
      register_verified(name, run_once, expected, counters)
          ->Iterations(1)
          ->Repetitions(std::max(options.repetitions, repetitions(options.suite)));
    }
  }
}

}  // namespace concbench
