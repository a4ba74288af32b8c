#include "bench/harness.hpp"
#include "bench/peers.hpp"
#include "bench/server_process.hpp"
#include "workloads/cpu_hash/cpu_hash.hpp"
#include "workloads/fan_out/fan_out.hpp"

#include <malloc.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

namespace concbench {

namespace {

using namespace fan_out;

std::string format_fail(double fail) {
  std::ostringstream out;
  out << fail;
  return out.str();
}

Keys cell_keys(const Params& p) {
  return {{"group", std::string(group_name(p.group))}, {"n", std::to_string(p.n)},
          {"k", std::to_string(p.k)},                  {"delay_us", std::to_string(p.delay_us)},
          {"bytes", std::to_string(p.body_bytes)},     {"fail", format_fail(p.fail)}};
}

// /proc/self/status in bytes: VmRSS (resident now) or VmHWM (its peak).
std::uint64_t status_bytes(std::string_view field) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind(field, 0) == 0) return std::stoull(line.substr(field.size() + 1)) * 1024;  // "...: N kB"
  return 0;
}

// Starts a new peak: free heap memory goes back to the kernel first (else a run
// reuses what an earlier one left and seems to need nothing), then writing 5 to
// clear_refs sets VmHWM to the current RSS.
void reset_peak_memory() {
  ::malloc_trim(0);
  std::ofstream("/proc/self/clear_refs") << "5";
}

// wrk: the peer whose requests per second are the limit line at delay 0. It runs
// one thread with the same number of connections against the same server.
struct WrkResult {
  double requests_per_s = 0, p50_us = 0, p99_us = 0;
};

double wrk_duration_us(std::string_view text) {
  double value = 0;
  std::string unit;
  std::istringstream(std::string(text)) >> value >> unit;  // "101.00us" reads as 101 then "us"
  if (unit.empty()) {
    const auto at = text.find_first_not_of("0123456789.");
    unit = at == std::string_view::npos ? "" : std::string(text.substr(at));
  }
  return unit == "ms" ? value * 1e3 : unit == "s" ? value * 1e6 : unit == "us" ? value : value * 1e6;
}

WrkResult run_wrk(const Target& target, unsigned connections, std::uint64_t delay_us, std::uint64_t bytes) {
  const std::string url = "http://" + target.host + ":" + std::to_string(target.port) +
                          work_target({delay_us, bytes, 0, 1});
  const std::string command = "wrk -t1 -c" + std::to_string(connections) + " -d2s --latency '" + url + "' 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) throw std::runtime_error("cannot run wrk");
  std::string output;
  char chunk[4096];
  while (const std::size_t n = std::fread(chunk, 1, sizeof chunk, pipe.get())) output.append(chunk, n);
  const int status = ::pclose(pipe.release());
  WrkResult result;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string first, second;
    words >> first >> second;
    if (first == "Requests/sec:") result.requests_per_s = std::stod(second);
    if (first == "50%") result.p50_us = wrk_duration_us(second);
    if (first == "99%") result.p99_us = wrk_duration_us(second);
    if (first == "Non-2xx") throw std::runtime_error("wrk got errors from the server:\n" + output);
  }
  if (status != 0 || result.requests_per_s <= 0) throw std::runtime_error("wrk failed:\n" + output);
  return result;
}

bool have_wrk() { return std::system("command -v wrk >/dev/null 2>&1") == 0; }

struct Record {
  std::shared_ptr<const Expected> expected;
  Measurements measured;
  Outcome outcome;
  std::chrono::duration<double> wall{};
  std::uint64_t rss_before = 0, peak_rss = 0;
  bool peer = false;  // a peer's resident peak includes its interpreter: no bytes per request
};

const std::shared_ptr<const Expected>& expected_for(const Params& p) {
  static std::map<Params, std::shared_ptr<const Expected>> cache;
  auto& e = cache[p];
  if (!e) e = std::make_shared<const Expected>(reference(p));
  return e;
}

// What a peer reports of an ok body: the first 8 bytes of its SHA-256, in hex.
std::string body_digest(std::uint64_t id, std::uint64_t bytes) {
  std::vector<char> body(bytes);
  fill_body(id, body);
  const std::uint64_t lane = cpu_hash::hash_block(std::as_bytes(std::span(body))).digest_sum[0];
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 8; ++i) out.append({kHex[lane >> (8 * i + 4) & 0xf], kHex[lane >> (8 * i) & 0xf]});
  return out;
}

const std::vector<std::string>& body_digests(const Params& p) {
  static std::map<std::pair<std::uint64_t, std::uint64_t>, std::vector<std::string>> cache;  // (n, bytes)
  auto& digests = cache[{p.n, p.body_bytes}];
  for (std::uint64_t id = digests.size(); id < p.n; ++id) digests.push_back(body_digest(id, p.body_bytes));
  return digests;
}

// One run of a peer client. Every request it reports is checked as the C++ clients
// check a response (the status its id draws, the body by its digest) and ends once
// in the tally; a request it never reports leaves the counts short of N.
Outcome run_peer(const peers::Peer& peer, unsigned workers, const Target& target, const Expected& e, Record& r) {
  const Params& p = e.p;
  const std::vector<std::string>& digests = body_digests(p);
  std::string prefix = work_target({p.delay_us, p.body_bytes, p.fail, 0});
  prefix.resize(prefix.rfind('=') + 1);  // ...&id=
  const auto reply = peers::run(peer,
                                {"fan_out", "--host", target.host, "--port", std::to_string(target.port), "--target",
                                 prefix, "--n", std::to_string(p.n), "--k", std::to_string(p.k), "--group",
                                 std::string(group_name(p.group)), "--timeout-ms", std::to_string(p.timeout.count())},
                                std::chrono::seconds(120), workers);
  r.peak_rss = reply.peak_rss_bytes;
  r.wall = {};
  r.measured.cancel.reset();
  Tally tally;
  peers::Ids seen(peer, p.n);
  bool have_wall = false;
  for (const std::string& line : reply.lines) {
    const auto w = peers::words(line);
    if (w.size() == 2 && (w[0] == "wall_ns" || w[0] == "cancel_ns")) {
      const std::chrono::nanoseconds value(peers::parse_u64(w[1], line));
      if (w[0] == "cancel_ns") {
        r.measured.cancel = value;
      } else if (!have_wall) {
        have_wall = true;
        r.wall = value;
      } else {
        peers::bad_line(peer, line, "a second wall_ns");
      }
      continue;
    }
    if (w.size() != 6 || w[0] != "request") peers::bad_line(peer, line, "unexpected line");
    const std::uint64_t id = seen.end(peers::parse_u64(w[1], line), line);
    const std::string& ending = w[2];
    if (w[4] != "-") r.measured.latency.record(std::chrono::nanoseconds(peers::parse_u64(w[4], line)));
    else if (ending != "cancelled") peers::bad_line(peer, line, "a request that ran has a latency");
    const std::uint64_t status = peers::parse_u64(w[3], line);
    // What the server sends this id: 500 where it draws a failure, else 200 and its body.
    const bool fails = draws_failure(id, p.fail);
    if (ending == "ok") {
      if (fails || status != 200 || w[5] != digests[id]) peers::bad_line(peer, line, "not what the server sends this id");
      tally.end(id, Ending::ok, e.body_checksums[id]);
    } else if (ending == "failed") {
      if (!fails || status != 500) peers::bad_line(peer, line, "not what the server sends this id");
      tally.end(id, Ending::failed);
    } else if (ending == "timed_out" || ending == "cancelled") {
      tally.end(id, ending == "timed_out" ? Ending::timed_out : Ending::cancelled);
    } else {
      peers::bad_line(peer, line, "no such ending");
    }
  }
  if (!have_wall) throw std::runtime_error("peer " + peer.name + ": no wall_ns in its reply");
  return tally.outcome();
}

void add_counters(benchmark::State& state, const Params& p, std::uint64_t in_flight, Record& r, unsigned workers) {
  if (!r.peer) r.peak_rss = status_bytes("VmHWM:");  // the peak since the reset before the loop
  Percentiles q = r.measured.latency.percentiles();
  const double seconds = r.wall.count();
  const double ideal_s =
      std::chrono::duration<double>(ideal_time(p, std::min<std::uint64_t>(p.k, std::max<std::uint64_t>(p.n, 1))))
          .count();
  auto& c = state.counters;
  c["n"] = static_cast<double>(p.n);
  c["k"] = p.k;
  c["in_flight_limit"] = static_cast<double>(in_flight);
  c["ideal_ms"] = ideal_s * 1e3;
  c["wall_ms"] = seconds * 1e3;  // a peer's own, without its start-up (the cell's real time has it)
  // What a model that holds fewer than K can reach at best (ideal_ms where it holds K).
  c["own_ideal_ms"] = std::chrono::duration<double, std::milli>(ideal_time(p, in_flight)).count();
  if (ideal_s > 0) c["ideal_ratio"] = seconds / ideal_s;
  c["requests_per_s"] = static_cast<double>(p.n) / seconds;
  c["latency_p50_us"] = q.p50_us;
  c["latency_p90_us"] = q.p90_us;
  c["latency_p99_us"] = q.p99_us;
  c["latency_p999_us"] = q.p999_us;
  c["latency_max_us"] = q.max_us;
  c["ok"] = static_cast<double>(r.outcome.ok);
  c["failed"] = static_cast<double>(r.outcome.failed);
  c["timed_out"] = static_cast<double>(r.outcome.timed_out);
  c["cancelled"] = static_cast<double>(r.outcome.cancelled);
  if (r.measured.cancel) c["cancel_us"] = std::chrono::duration<double, std::micro>(*r.measured.cancel).count();
  c["peak_rss_bytes"] = static_cast<double>(r.peak_rss);
  if (!r.peer)
    c["bytes_per_in_flight"] =
        static_cast<double>(r.peak_rss > r.rss_before ? r.peak_rss - r.rss_before : 0) / static_cast<double>(in_flight);
  c["workers"] = workers;
}

}  // namespace

void register_fan_out(Runtimes& runtimes, const Options& options, ServerProcess& server) {
  reserve_descriptors();
  const auto sets = parameter_sets(options.suite);
  std::string skipped;
  auto skip = [&skipped](const std::string& name, const std::string& reason) {
    skipped.append(skipped.empty() ? "" : ", ").append("{\"name\": \"").append(escape_json(name));
    skipped.append("\", \"reason\": \"").append(escape_json(reason)).append("\"}");
  };

  for (Model model : kModels) {
    if (!supports(model) || !wants(options, model)) continue;
    const std::vector<PoolSize> variants =
        model == Model::thread_pool ? std::vector{PoolSize::workers, PoolSize::per_request} : std::vector{PoolSize::workers};
    for (PoolSize size : variants) {
      Keys model_keys;
      if (model == Model::thread_pool) model_keys.push_back({"pool", std::string(pool_size_name(size))});
      for (const Params& p : sets) {
        Keys keys = model_keys;
        const Keys own = cell_keys(p);
        keys.insert(keys.end(), own.begin(), own.end());
        const std::string name = benchmark_name("fan_out", model, keys, runtimes.threads(model));
        const std::uint64_t in_flight = in_flight_limit(model, size, runtimes.workers, p);
        if (const auto ideal = ideal_time(p, in_flight); ideal > kMaxIdealTime) {
          std::ostringstream reason;
          reason << "ideal " << std::chrono::duration<double>(ideal).count() << " s (" << p.n << " requests, "
                 << in_flight << " in flight, " << p.delay_us / 1000.0 << " ms each) exceeds "
                 << kMaxIdealTime.count() << " s";
          skip(name, reason.str());
          continue;
        }
        auto record = std::make_shared<Record>();
        // Before the timed loop (each benchmark runs one iteration): the reference the
        // run is checked against, the server (the first cell starts it), and a fresh
        // memory peak, so that none of it lands in the cell's time.
        auto expected = [p, record, &server] {
          server.target();
          const auto& e = expected_for(p);
          record->expected = e;
          record->measured = {};
          record->measured.latency.reserve(p.n);
          reset_peak_memory();
          record->rss_before = status_bytes("VmRSS:");
          return *e;
        };
        auto run_once = [&runtimes, &server, model, size, p, record] {
          const auto start = std::chrono::steady_clock::now();
          record->outcome = run(model, size, runtimes, server.target(), *record->expected, record->measured);
          record->wall = std::chrono::steady_clock::now() - start;
          return record->outcome;
        };
        auto* cell = register_verified(name, run_once, expected,
                                       [p, in_flight, record, &runtimes](benchmark::State& state) {
                                         add_counters(state, p, in_flight, *record, runtimes.workers);
                                       })
                         ->Iterations(1);
        // The grid runs once, to stay in its time; the cells the report states are
        // repeated like every other workload's (--benchmark_repetitions: the report
        // takes the median), since one run of a loopback cell moves by a few percent.
        if (!is_stated(p)) cell->Repetitions(1);
      }
    }
  }

  if (!options.parallel_only) {
    if (!have_wrk()) {
      benchmark::AddCustomContext("fan_out_wrk", "not found: install the Debian package wrk for the peer line");
    } else {
      // Every delay-0 cell's connections and body size: the rate limit. And the
      // headline cell (K=100, 10 ms): how near the ideal this machine and server
      // let even wrk come.
      std::set<std::tuple<unsigned, std::uint64_t, std::uint64_t>> peers;  // (connections, delay, bytes)
      for (const Params& p : sets)
        if (p.fail == 0 && (p.delay_us == 0 || (p.n == 10000 && p.k == 100 && p.delay_us == 10000)))
          peers.insert({p.k, p.delay_us, p.body_bytes});
      for (auto [connections, delay_us, bytes] : peers) {
        const std::string name = "fan_out/wrk/k:" + std::to_string(connections) + "/delay_us:" +
                                 std::to_string(delay_us) + "/bytes:" + std::to_string(bytes) + "/workers:1";
        auto* peer = benchmark::RegisterBenchmark(name.c_str(), [&server, connections, delay_us, bytes](benchmark::State& state) {
          try {
            WrkResult result;
            for (auto _ : state) result = run_wrk(server.target(), connections, delay_us, bytes);
            state.counters["requests_per_s"] = result.requests_per_s;
            state.counters["latency_p50_us"] = result.p50_us;
            state.counters["latency_p99_us"] = result.p99_us;
            state.counters["k"] = connections;
            if (delay_us > 0)  // K requests every delay at best
              state.counters["ideal_ratio"] = connections / (delay_us * 1e-6) / result.requests_per_s;
          } catch (const std::exception& e) {
            state.SkipWithError(e.what());
          }
        });
        peer->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);  // 2 s each, like one cell
        if (connections != 100) peer->Repetitions(1);  // repeated beside the stated cells, at K=100
      }
    }
  }
  if (!options.parallel_only) {
    for (const peers::Peer& peer : peers::all()) {
      if (!peer.missing.empty()) continue;
      // Python and Node serve every request on one thread; Go on every core (its default GOMAXPROCS).
      const unsigned workers = peer.goroutines ? std::max(1u, std::thread::hardware_concurrency()) : 1;
      for (const Params& p : sets) {
        if (!peer_runs(options.suite, p)) continue;
        const std::string name = benchmark_name("fan_out", peer.model(), cell_keys(p), workers);
        if (ideal_time(p, p.k) > kMaxIdealTime) {
          skip(name, "ideal above " + std::to_string(kMaxIdealTime.count()) + " s");
          continue;
        }
        auto record = std::make_shared<Record>();
        record->peer = true;
        auto expected = [p, record, &server] {
          server.target();
          record->expected = expected_for(p);
          body_digests(p);
          record->measured = {};
          return *record->expected;
        };
        auto run_once = [&peer, &server, workers, record] {
          record->outcome = run_peer(peer, workers, server.target(), *record->expected, *record);
          return record->outcome;
        };
        auto* cell = register_verified(name, run_once, expected,
                                       [p, record, workers](benchmark::State& state) {
                                         add_counters(state, p, p.k, *record, workers);
                                       })
                         ->Iterations(1);
        // A peer's run of 10000 requests takes seconds (Python and Node), so outside
        // --full its stated cells run once, to keep the default suite in its time.
        if (!is_stated(p) || options.suite != Suite::full) cell->Repetitions(1);
      }
    }
  }
  benchmark::AddCustomContext("fan_out_skipped", "[" + skipped + "]");
  benchmark::AddCustomContext("fan_out_stated", stated_json());
  benchmark::AddCustomContext("fan_out_server", server.description());
}

}  // namespace concbench
