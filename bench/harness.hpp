#pragma once
// What every workload's registration shares: the run options, benchmark names,
// and one way to register a benchmark whose every result is verified.
#include "models/runtimes.hpp"
#include "workloads/suite.hpp"

#include <benchmark/benchmark.h>

#include <chrono>
#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace concbench {

struct Options {
  Suite suite = Suite::standard;
  unsigned workers = 1;
  bool parallel_only = false;  // --models=parallel: only models that follow --workers
  std::string target;          // --target: fan_out's server URL; empty: a child concbench-server
  int repetitions = 1;         // --benchmark_repetitions, read before Google Benchmark takes it
  bool interleaved = false;    // --benchmark_enable_random_interleaving
};

inline bool wants(const Options& options, Model model) {
  return !options.parallel_only || follows_workers(model);
}

using Keys = std::vector<std::pair<std::string_view, std::string>>;

// "<workload>/<model>/<key>:<value>/.../workers:<threads>": splits on '/' for plots
// and stays unique across runs with different --workers.
// A workload's own baselines and variants name their model as a string.
inline std::string benchmark_name(std::string_view workload, std::string_view model, const Keys& keys,
                                  unsigned threads) {
  std::string name{workload};
  name += '/';
  name += model;
  for (const auto& [key, value] : keys) name.append("/").append(key).append(":").append(value);
  return name + "/workers:" + std::to_string(threads);
}
inline std::string benchmark_name(std::string_view workload, Model model, const Keys& keys, unsigned threads) {
  return benchmark_name(workload, model_name(model), keys, threads);
}

// text as the inside of a JSON string.
inline std::string escape_json(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += c == '\n' ? "\\n" : " ";
      continue;
    }
    out += c;
  }
  return out;
}

// A result is right if it equals the reference, or, for a workload whose correct
// results may differ between runs (fan_out's fail-fast groups), if its own
// matches(got, want) says so.
template <class Got, class Want>
bool verified(const Got& got, const Want& want) {
  if constexpr (requires { matches(got, want); })
    return matches(got, want);
  else
    return got == want;
}

// Registers a benchmark that calls `run()` once per iteration and checks every
// result against `expected()`, computed before the timed loop. A mismatch or an
// exception ends the benchmark with an error, in every build type. `counters(state)`
// adds throughput and context once the loop is done. With `workers`, the CPU its
// worker processes used, which process CPU time misses, becomes the counter
// `worker_cpus` (average CPUs busy in worker processes over the wall time), and a
// worker that dies ends the benchmark with an error.
template <class Run, class Expected, class Counters>
benchmark::internal::Benchmark* register_verified(const std::string& name, Run run, Expected expected,
                                                  Counters counters, const ProcessPool* workers = nullptr) {
  auto body = [run, expected, counters, workers](benchmark::State& state) {
    try {
      const unsigned replacements_before = workers ? workers->replacements() : 0;
      const auto want = expected();
      const double worker_cpu_before = workers ? workers->worker_cpu_seconds() : 0;
      const auto start = std::chrono::steady_clock::now();
      for (auto _ : state) {
        const auto got = run();
        if (!verified(got, want)) {
          state.SkipWithError(("result differs from the reference: got " + to_string(got) + ", expected " +
                               to_string(want))
                                  .c_str());
          return;
        }
      }
      // A worker that died took its CPU time with it, and its replacement's start is
      // in the time. No task fails if it died between tasks (they run again), so
      // the replacement is what tells.
      if (workers && workers->replacements() != replacements_before) {
        state.SkipWithError("a worker process died during the run and was replaced: its time is not comparable");
        return;
      }
      if (workers) {
        const std::chrono::duration<double> wall = std::chrono::steady_clock::now() - start;
        state.counters["worker_cpus"] = (workers->worker_cpu_seconds() - worker_cpu_before) / wall.count();
      }
      counters(state);
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
    }
  };
  return benchmark::RegisterBenchmark(name.c_str(), body)
      ->UseRealTime()
      ->MeasureProcessCPUTime()
      ->Unit(benchmark::kMillisecond);
}

// One function per workload, called from main().
void register_cpu_hash(Runtimes& runtimes, const Options& options);
// kind:cpu sizes its work from the calibrated single-core SHA-256 speed.
void register_blocking_stall(Runtimes& runtimes, const Options& options, double sha256_bytes_per_second);
class ServerProcess;
void register_fan_out(Runtimes& runtimes, const Options& options, ServerProcess& server);
void register_producer_consumer(Runtimes& runtimes, const Options& options);

}  // namespace concbench
