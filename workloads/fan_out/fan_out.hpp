#pragma once
// fan_out: N HTTP requests to a server with at most K in flight, a timeout per
// request, and a group that either fails fast or lets every request settle.
//
// This is the network-bound workload, the "concurrent fetcher" that asyncio's
// TaskGroup + Semaphore + timeout, Go's errgroup + buffered channel + context and
// Promise.all are all used for. Each request waits on the server (which answers
// after `delay_us`, on a timer) far longer than it computes, so what a model must
// do well is hold many requests in flight cheaply: the wall time against the ideal
// ceil(N / K) x delay shows how close it gets, memory per in-flight request shows
// what holding one costs, and at delay 0 requests per second against `wrk` shows
// the per-request overhead. A thread pool doing blocking I/O can hold only as many
// requests as it has threads; that limit is the point of running it.
//
// The server's contract is written once, here: the request target, the body a
// given id gets (fast to make and to check, position-dependent so a truncated or
// reordered body fails), and the deterministic draw that makes request id fail
// with probability `fail`. Every response is checked as it arrives (status, length,
// checksum), and every request ends as exactly one of ok, failed, timed out or
// cancelled; the four counts sum to N.
#include "models/runtimes.hpp"
#include "workloads/latency.hpp"
#include "workloads/suite.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace concbench::fan_out {

// ---- The server's contract -------------------------------------------------------

// GET /work?delay_us=D&bytes=B&fail=P&id=I; a missing key takes its default.
struct WorkQuery {
  std::uint64_t delay_us = 0;
  std::uint64_t bytes = 0;
  double fail = 0;  // probability in [0, 1]
  std::uint64_t id = 0;
  bool operator==(const WorkQuery&) const = default;
};
inline constexpr std::uint64_t kMaxDelayUs = 60'000'000;    // one minute
inline constexpr std::uint64_t kMaxBodyBytes = 64u << 20;  // 64 MiB

std::string work_target(const WorkQuery& q);
// nullopt for anything but the path /work with known keys, each at most once, and
// values in range: the server answers 400 then.
std::optional<WorkQuery> parse_work_target(std::string_view target);

// Whether request `id` fails (HTTP 500) at probability `fail`: a fixed draw from id.
bool draws_failure(std::uint64_t id, double fail);
// The body of request `id`: `out.size()` bytes, a function of id and position only.
// `first_byte` (a multiple of 8) is where `out` starts in the body: a body can be filled in pieces.
void fill_body(std::uint64_t id, std::span<char> out, std::uint64_t first_byte = 0);
// A checksum of a body that changes with any byte, its position and the length.
std::uint64_t body_checksum(std::span<const char> body);

// Grows this process's descriptor table to hold kReservedDescriptors (or the
// descriptor limit, if lower) before anything is timed. The kernel grows the table
// by doubling when a new socket does not fit, and in a process with threads each
// growth waits out an RCU grace period inside that socket() or accept(): 8 to 36 ms
// measured on a 16-core machine, at descriptors 64, 128, 256 and so on. A client
// opening K connections, or a server accepting them, would stall that long in the
// middle of a timed run. The table never shrinks, so once is enough; best effort.
inline constexpr int kReservedDescriptors = 4096;  // K = 1000 connections, four times over
void reserve_descriptors();

// ---- The client workload ---------------------------------------------------------

enum class Group { all, settled };  // fail fast (TaskGroup, errgroup) or gather every outcome
std::string_view group_name(Group group);

struct Params {
  std::uint64_t n;         // requests
  unsigned k;              // at most this many in flight, on at most this many connections
  std::uint64_t delay_us;  // the server waits this long before answering
  std::uint64_t body_bytes;
  double fail;             // probability that a request gets HTTP 500
  Group group;
  std::chrono::milliseconds timeout{1000};  // per request
  auto operator<=>(const Params&) const = default;
};

// Where the client sends its requests.
struct Target {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
};

// How a request ended: each request ends exactly once.
enum class Ending { ok, failed, timed_out, cancelled };

// The endings of one run. Models with several threads share one; it is lock-free.
struct Outcome {
  std::uint64_t ok = 0, failed = 0, timed_out = 0, cancelled = 0;
  std::uint64_t ended_sum = 0;  // sum of a tag of every ended id: a lost and a doubled id differ
  std::uint64_t ok_sum = 0;     // sum of the ok bodies' checksums
  std::uint64_t total() const { return ok + failed + timed_out + cancelled; }
  bool operator==(const Outcome&) const = default;
};
std::string to_string(const Outcome& o);

class Tally {
 public:
  void end(std::uint64_t id, Ending ending, std::uint64_t body_checksum = 0);  // checksum: ok only
  Outcome outcome() const;

 private:
  std::atomic<std::uint64_t> counts_[4]{}, ended_sum_{0}, ok_sum_{0};
};

// What a correct run shows. group:settled: exactly `settled`, every request run to
// its end. group:all: the first failure may stop any of the rest, so every id must
// end once (ended_sum), failures show iff any request draws one, no more requests
// end ok or failed than settled would have, and none times out (the server's delay
// is far below the timeout in every parameter set).
struct Expected {
  Params p;
  Outcome settled;
  std::vector<std::uint64_t> body_checksums;  // by id: what an ok response carries
};
Expected reference(const Params& p);
std::string to_string(const Expected& e);
bool matches(const Outcome& got, const Expected& want);

// Checks one response to request `id` and records how it ended: ok for 200 with its
// body, failed for 500 where it draws a failure. Anything else throws: the server
// or the client is wrong, and the run must not count it.
Ending record_response(Tally& tally, const Expected& e, std::uint64_t id, unsigned status, std::string_view body);

// What one run measured beside its outcome.
struct Measurements {
  LatencyRecorder latency;  // each request, from taking its slot (before a connect, if any) to its end
  // From the first failure (group:all) until the last sibling stopped; none if the
  // group never stopped.
  std::optional<std::chrono::nanoseconds> cancel;
};

// ---- Models -----------------------------------------------------------------------

// thread_pool runs twice: on its pool (pool:workers: --workers threads, so at most
// that many blocking requests in flight) and with one thread per in-flight request
// (pool:per_request: K threads).
enum class PoolSize { workers, per_request };
std::string_view pool_size_name(PoolSize size);

// How many requests a model holds in flight at most: K, unless its threads cap it.
std::uint64_t in_flight_limit(Model model, PoolSize size, unsigned workers, const Params& p);
// ceil(N / in flight) x delay: the wall time of a model that adds nothing while it
// holds `in_flight` requests. The ideal a cell is judged by holds K (in_flight = K).
std::chrono::microseconds ideal_time(const Params& p, std::uint64_t in_flight);
// Cells whose ideal wall time is longer are not run (the report lists them).
inline constexpr std::chrono::seconds kMaxIdealTime{2};

std::vector<Params> parameter_sets(Suite suite);
// The cells whose figures the report states, defined here only: wall / ideal at
// the headline cell, and requests per second against wrk at delay 0. Both N=10000,
// K=100, 64 B, no failures, group:settled.
inline const Params kIdealCell{10000, 100, 10000, 64, 0, Group::settled};
inline const Params kRateCell{10000, 100, 0, 64, 0, Group::settled};
bool is_stated(const Params& p);
// The cells the peers in other languages (bench/peers.hpp) run: the fail-fast pair,
// and the ideal cell in the default suite (10000 requests take Python and Node
// seconds, so their rate at delay 0 against wrk waits for --full), the whole grid in
// --full.
bool peer_runs(Suite suite, const Params& p);
// The report's checks on those figures: a series' ratio at most (or at least) a limit.
struct Check {
  std::string_view name, series, figure;  // figure: "ideal" or "rate_vs_wrk"
  double limit;
  bool at_most;
};
inline constexpr Check kChecks[] = {{"event_loop_ideal", "event_loop", "ideal", 1.05, true},
                                    {"fibers_ideal", "fibers", "ideal", 1.1, true},
                                    {"event_loop_vs_wrk", "event_loop", "rate_vs_wrk", 0.9, false}};
// The stated cells and the checks as JSON, for the results' context (fan_out_stated).
std::string stated_json();
bool supports(Model model);  // every model but process_pool

// One function per model. Each sends every request of `e.p` to `target` and
// returns how they ended; a server that cannot be reached, or a wrong answer,
// throws.
Outcome run_serial(const Target& target, const Expected& e, Measurements& m);
Outcome run_event_loop(EventLoop& loop, const Target& target, const Expected& e, Measurements& m);
Outcome run_fibers(FiberPool& pool, const Target& target, const Expected& e, Measurements& m);
Outcome run_thread_pool(ThreadPool& pool, const Target& target, const Expected& e, Measurements& m);
Outcome run_thread_per_request(const Target& target, const Expected& e, Measurements& m);
Outcome run(Model model, PoolSize size, Runtimes& runtimes, const Target& target, const Expected& e,
            Measurements& m);

}  // namespace concbench::fan_out
