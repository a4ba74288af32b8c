#pragma once
// blocking_stall: a blocking or CPU-heavy call among light requests, run inline or
// offloaded to threads or to processes.
//
// One thread, one loop: a blocking call freezes every other task on it. The usual
// advice is "offload blocking work to a thread pool, CPU work to a process pool",
// but an offload has a fixed cost (a hand-off, a wake-up, for processes a copy
// through the kernel), so below some amount of work it makes things worse. This
// workload measures both sides and finds the crossover.
//
// Light requests arrive open-loop at `rate` per second (their arrival times are
// fixed in advance and latency counts from them) and hash 64 bytes. Heavy requests
// arrive at their own fixed rate, one every max(2 ms, 4 x work): at most a quarter
// of one thread, so that the offload targets never saturate and what is measured
// is the stall, not a queue. A heavy request either hashes as many bytes as take
// `work_us` here (kind:cpu, calibrated at start from the cpu_hash kernel) or blocks
// its thread in a read for `work_us` (kind:sleep, like a synchronous driver call).
// A 1 ms ticker on the loop records how late each tick fires (loop lag).
//
// Work 0 runs inline only: heavy requests that do no more than light ones, the
// machine's own floor for light latency, against which a stall is judged. Every
// cell runs several times, interleaved with the others (see repetitions()): the
// report compares cells by their runs, not by one run each.
//
// Every request ends exactly once, completed or failed, and the completed ones
// fold their results into a checksum compared with `reference()`.
#include "models/runtimes.hpp"
#include "workloads/latency.hpp"
#include "workloads/sched_stats.hpp"
#include "workloads/suite.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace concbench::blocking_stall {

enum class Kind { cpu, sleep };
enum class Offload { inline_call, threads, processes };
std::string_view kind_name(Kind kind);
std::string_view offload_name(Offload offload);

struct Params {
  Kind kind;
  Offload offload;
  std::uint64_t work_us;
  double rate;                     // light requests per second
  std::uint64_t cpu_bytes = 0;     // kind:cpu: bytes that take about work_us to hash
  std::chrono::milliseconds duration{};  // how long requests keep arriving
  auto operator<=>(const Params&) const = default;
};

// The requests of one run, in arrival order.
struct Request {
  std::chrono::nanoseconds arrival;  // from the start of the run
  bool heavy;
  std::uint64_t id;
};
std::vector<Request> schedule(const Params& p);
std::chrono::nanoseconds heavy_interval(const Params& p);

struct Outcome {
  std::uint64_t light = 0, heavy = 0, failed = 0;  // requests by how they ended
  std::uint64_t checksum = 0;                      // sum of the completed requests' results
  bool operator==(const Outcome&) const = default;
};
std::string to_string(const Outcome& o);

// What one run measured beside its outcome.
struct Measurements {
  LatencyRecorder light, heavy, lag;
  LatencyRecorder stall;  // how long each inline heavy call held its thread
  std::vector<pid_t> serving_threads;      // the threads that ran light requests
  std::optional<SchedStats> serving_wait;  // their waits for a CPU during the run
};

// The kernels, written once: what a request computes, wherever it runs.
std::uint64_t light_work(std::uint64_t id);
// kind:sleep's blocking call: holds the calling thread for `duration` without a CPU.
void block_for(std::chrono::microseconds duration);
std::uint64_t heavy_work(Kind kind, std::uint64_t work_us, std::uint64_t cpu_bytes, std::uint64_t id);
// The heavy call run inline, timed: the stall it causes lasts `took`, which for
// kind:cpu is work_us only as far as the calibration of cpu_bytes holds.
struct Timed {
  std::uint64_t value;
  std::chrono::nanoseconds took;
};
Timed heavy_inline(const Params& p, std::uint64_t id);
// The same, as a process-pool task: payload {kind, work_us, cpu_bytes, id}.
Bytes heavy_task(std::span<const std::byte> payload);
Bytes heavy_message(const Params& p, std::uint64_t id);
std::uint64_t heavy_reply(const Bytes& reply);

// Records request r's latency from its scheduled arrival and folds its result (none:
// it failed) into the outcome; notes the thread that ran a light request. Callers
// serialise calls on one outcome.
void finish(const Request& r, std::chrono::steady_clock::time_point start, std::optional<std::uint64_t> result,
            Outcome& o, Measurements& m);

// The same with a latency measured elsewhere (by a peer in another language).
void record(const Request& r, std::chrono::nanoseconds latency, std::optional<std::uint64_t> result, Outcome& o,
            Measurements& m);

// What each request of schedule(p) computes, by id; and the counts and checksum
// when every request completes.
std::vector<std::uint64_t> results(const Params& p);
Outcome reference(const Params& p);

// Bytes that take `work_us` to hash at `bytes_per_second`.
std::uint64_t cpu_bytes_for(std::uint64_t work_us, double bytes_per_second);
// The cells of a suite for a model with `workers` pool threads or processes.
std::vector<Params> parameter_sets(Suite suite, Model model, unsigned workers, double sha256_bytes_per_second);
// How many times each cell runs at least. A verdict between two cells compares their
// runs less those the machine's hiccups took, up to half, and needs 4 left for a 95%
// interval, so 7 runs (MIN_RUNS in scripts/lib/workloads/blocking_stall.py). The
// default suite runs each cell 10 times, and scripts/bench then runs the cells that
// decide a break-even more often (a second pass: EXTRA_RUNS there); the full suite
// runs every cell 14 times before that.
int repetitions(Suite suite);
// Whether a peer in another language (bench/peers.hpp) runs cell p, and how often.
// Each of its runs starts a process, 0.1 to 0.7 s here, so outside --full they run
// the floor and 100 µs, 1 ms and 10 ms, eight times each (the fewest the rule takes,
// and one more), to keep the default suite in its time.
bool peer_runs(Suite suite, const Params& p);
int peer_repetitions(Suite suite);

// One function per model: event_loop, fibers (one thread), thread_pool.
Outcome run_event_loop(Runtimes& runtimes, const Params& p, Measurements& m);
Outcome run_fibers(Runtimes& runtimes, const Params& p, Measurements& m);
Outcome run_thread_pool(Runtimes& runtimes, const Params& p, Measurements& m);
// Runs one cell on a model and reads the serving threads' waits for a CPU.
Outcome run(Model model, Runtimes& runtimes, const Params& p, Measurements& m);

}  // namespace concbench::blocking_stall
