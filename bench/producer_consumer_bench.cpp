#include "bench/harness.hpp"
#include "workloads/producer_consumer/producer_consumer.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <stdexcept>
#include <tuple>

namespace concbench {

namespace {

using namespace producer_consumer;

// The latency run offers half the rate the cell just reached, for about this long
// (at least kMinLatencyMessages, so that p99.9 rests on ten samples or more; at
// most M). Above kSampleAbove messages per second it samples one message in
// kSampling: by then a clock reading costs about as much as a hand-off.
constexpr double kLatencySeconds = 0.1;
constexpr std::uint64_t kMinLatencyMessages = 10'000;
constexpr double kSampleAbove = 1e6;
constexpr std::uint64_t kSampling = 8;

const Tally& cached_reference(std::uint64_t messages) {
  static std::map<std::uint64_t, Tally> cache;
  auto it = cache.find(messages);
  if (it == cache.end()) it = cache.emplace(messages, reference(Params{.messages = messages})).first;
  return it->second;
}

struct Record {
  std::chrono::duration<double> wall{};
  std::uint64_t runs = 0;
  Outcome outcome;  // the last run's
};

void add_counters(benchmark::State& state, Runtimes& runtimes, Impl impl, const Params& p, const Record& r,
                  unsigned threads) {
  const double rate = static_cast<double>(p.messages * r.runs) / r.wall.count();
  auto& c = state.counters;
  c["p"] = p.producers;
  c["c"] = p.consumers;  // 0: the pool's threads (thread_pool)
  c["q"] = static_cast<double>(p.capacity);
  c["capacity"] = static_cast<double>(r.outcome.capacity);
  c["messages"] = static_cast<double>(p.messages);
  c["work_ns"] = static_cast<double>(p.work_ns);
  c["workers"] = threads;
  c["msgs_per_s"] = rate;
  // Of the last run: how often and how long producers waited for room.
  const double last_wall = r.wall.count() / static_cast<double>(r.runs);
  c["blocked_send_share"] = p.messages ? static_cast<double>(r.outcome.blocked_sends) / p.messages : 0;
  c["blocked_time_share"] =
      std::chrono::duration<double>(r.outcome.blocked).count() / (last_wall * p.producers);

  // Open loop at half the measured maximum: latency from each message's due time.
  if (p.messages == 0 || !(rate > 0)) return;
  Params paced = p;
  paced.rate_per_s = rate / 2;
  paced.messages = std::clamp<std::uint64_t>(static_cast<std::uint64_t>(paced.rate_per_s * kLatencySeconds),
                                             std::min(kMinLatencyMessages, p.messages), p.messages);
  paced.latency_sampling = paced.rate_per_s > kSampleAbove ? kSampling : 1;
  const auto start = std::chrono::steady_clock::now();
  Outcome o = run(impl, runtimes, paced);
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  if (!matches(o, cached_reference(paced.messages)))
    throw std::runtime_error("latency run: result differs from the reference: got " + to_string(o) +
                             ", expected " + to_string(cached_reference(paced.messages)));
  const Percentiles q = o.latency.percentiles();
  c["latency_rate_per_s"] = paced.rate_per_s;
  c["latency_messages"] = static_cast<double>(paced.messages);
  c["latency_samples"] = static_cast<double>(q.count);
  // Below the offered rate: the cell fell behind its schedule, and its latency
  // counts the backlog (open loop) more than the hand-off.
  c["latency_achieved_per_s"] = static_cast<double>(paced.messages) / took.count();
  c["latency_p50_us"] = q.p50_us;
  c["latency_p90_us"] = q.p90_us;
  c["latency_p99_us"] = q.p99_us;
  c["latency_p999_us"] = q.p999_us;
  c["latency_max_us"] = q.max_us;
}

}  // namespace

void register_producer_consumer(Runtimes& runtimes, const Options& options) {
  bool any = false;
  for (Impl impl : kImpls) {
    if (options.parallel_only && !follows_workers(impl)) continue;
    const unsigned threads = follows_workers(impl) ? runtimes.workers : 1;
    for (const Params& p : parameter_sets(options.suite, impl)) {
      any = true;
      const std::string name =
          benchmark_name("producer_consumer", impl_name(impl),
                         {{"p", std::to_string(p.producers)},
                          {"c", p.consumers ? std::to_string(p.consumers) : "pool"},
                          {"q", std::to_string(p.capacity)},
                          {"work_ns", std::to_string(p.work_ns)}},
                         threads);
      auto record = std::make_shared<Record>();
      auto expected = [p, record] {
        *record = {};
        return cached_reference(p.messages);
      };
      auto run_once = [&runtimes, impl, p, record] {
        const auto start = std::chrono::steady_clock::now();
        record->outcome = run(impl, runtimes, p);
        record->wall += std::chrono::steady_clock::now() - start;
        ++record->runs;
        return record->outcome;
      };
      // One run per repetition: a run is M messages (0.05 s or more), and the
      // latency run after it would be repeated with every iteration count that
      // Google Benchmark tries.
      register_verified(name, run_once, expected,
                        [&runtimes, impl, p, record, threads](benchmark::State& state) {
                          add_counters(state, runtimes, impl, p, *record, threads);
                        })
          ->Iterations(1);
    }
  }
  if (any)
    benchmark::AddCustomContext("producer_consumer_spin_ns_per_iteration", std::to_string(spin_ns_per_iteration()));
}

}  // namespace concbench
