#include "workloads/producer_consumer/producer_consumer.hpp"

#include "workloads/mix.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>

namespace concbench::producer_consumer {

namespace {

constexpr std::uint64_t kPayloadSalt = 0x7061796c6f6164ULL;

// Keeps a value the compiler would otherwise see as unused, and the loop that
// made it, without a store.
inline void keep(std::uint64_t value) { asm volatile("" : : "r"(value)); }

std::uint64_t spin(std::uint64_t iterations, std::uint64_t x) {
  for (std::uint64_t i = 0; i < iterations; ++i) x = mix(x + i);
  return x;
}

}  // namespace

std::string_view impl_name(Impl impl) {
  constexpr std::array<std::string_view, std::size(kImpls)> names{
      "event_loop", "fibers", "fibers_mt", "thread_pool", "threads_queue", "moodycamel", "spsc_lockfree"};
  return names[static_cast<std::size_t>(impl)];
}

bool follows_workers(Impl impl) { return impl == Impl::fibers_mt || impl == Impl::thread_pool; }

std::string to_string(const Params& p) {
  std::string out = "P=" + std::to_string(p.producers);
  out.append(" C=").append(std::to_string(p.consumers));
  out.append(" Q=").append(std::to_string(p.capacity));
  out.append(" M=").append(std::to_string(p.messages));
  out.append(" work_ns=").append(std::to_string(p.work_ns));
  return out;
}

std::uint64_t payload_of(std::uint64_t id) { return mix(id ^ kPayloadSalt); }

Tally& Tally::operator+=(const Tally& other) {
  count += other.count;
  id_sum += other.id_sum;
  bad_payloads += other.bad_payloads;
  return *this;
}

std::string to_string(const Tally& t) {
  std::string out = "{count " + std::to_string(t.count);
  out.append(", id sum ").append(std::to_string(t.id_sum));
  out.append(", bad payloads ").append(std::to_string(t.bad_payloads)).append("}");
  return out;
}

Tally reference(const Params& p) {
  Tally t;
  for (std::uint64_t id = 0; id < p.messages; ++id) {
    ++t.count;
    t.id_sum += mix(id);
  }
  return t;
}

std::string to_string(const Outcome& o) {
  std::string out = to_string(o.tally);
  out.append(" from ").append(std::to_string(o.sent)).append(" sent");
  if (o.error) {
    try {
      std::rethrow_exception(o.error);
    } catch (const std::exception& e) {
      out.append(", failed: ").append(e.what());
    } catch (...) {
      out.append(", failed");
    }
  }
  return out;
}

bool matches(const Outcome& got, const Tally& want) {
  return !got.error && got.sent == want.count && got.producers_closed == 0 && got.tally == want;
}

// ---- The kernel --------------------------------------------------------------------

double spin_ns_per_iteration() {
  static const double ns = [] {
    constexpr std::uint64_t kIterations = 1 << 21;
    double best = std::numeric_limits<double>::infinity();
    for (int trial = 0; trial < 5; ++trial) {  // the fastest: least disturbed by the machine
      const auto start = Clock::now();
      keep(spin(kIterations, static_cast<std::uint64_t>(trial)));
      const std::chrono::duration<double, std::nano> took = Clock::now() - start;
      best = std::min(best, took.count() / kIterations);
    }
    return best;
  }();
  return ns;
}

std::uint64_t spin_iterations(std::uint64_t work_ns) {
  if (work_ns == 0) return 0;
  return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(static_cast<double>(work_ns) / spin_ns_per_iteration()));
}

Producer::Producer(const Params& p, unsigned index, std::optional<OpenLoopSchedule> pace)
    : next_(index), step_(p.producers), messages_(p.messages), pace_(pace) {}

std::optional<Clock::time_point> Producer::not_yet_due() {
  if (!pace_) return std::nullopt;
  const auto due = pace_->arrival(next_);
  if (due <= now_ || due <= (now_ = Clock::now())) return std::nullopt;
  return due;
}

Message Producer::next() {
  Message m{next_, payload_of(next_), pace_ ? pace_->arrival(next_).time_since_epoch().count() : 0};
  next_ += step_;
  return m;
}

std::optional<Clock::time_point> sleep_target(Clock::time_point due, Clock::time_point now) {
  if (due - now > 2 * kYieldWindow) return due - kYieldWindow;
  return std::nullopt;
}

Consumer::Consumer(const Params& p)
    : work_iterations_(spin_iterations(p.work_ns)),
      fail_at_(p.fail_at),
      sampling_(std::max<std::uint64_t>(p.latency_sampling, 1)),
      paced_(p.rate_per_s > 0) {
  if (paced_) latency_.reserve(p.messages / sampling_ + 1);
}

bool sampled(std::uint64_t id, std::uint64_t sampling) { return mix(id) % std::max<std::uint64_t>(sampling, 1) == 0; }

void Consumer::receive(const Message& m) {
  if (m.id == fail_at_) throw std::runtime_error("consumer failed on message " + std::to_string(m.id));
  if (m.payload != payload_of(m.id)) ++tally_.bad_payloads;
  if (work_iterations_ > 0) keep(spin(work_iterations_, m.payload));
  const std::uint64_t hash = mix(m.id);
  ++tally_.count;
  tally_.id_sum += hash;
  if (paced_ && hash % sampling_ == 0)  // sampled(m.id, sampling_), with the hash at hand
    latency_.record(Clock::now() - Clock::time_point(Clock::duration(m.due)));
}

std::vector<Consumer> make_consumers(const Params& p) {
  std::vector<Consumer> consumers;
  consumers.reserve(p.consumers);
  for (unsigned c = 0; c < p.consumers; ++c) consumers.emplace_back(p);
  return consumers;
}

// The schedule starts a little after the group is set up, so that starting the
// tasks (threads, fibers) does not count as latency of the first messages.
constexpr auto kPaceLead = std::chrono::milliseconds(2);

Group::Group(const Params& p, bool consumers_are_pool) : p_(p), producers_left_(p.producers) {
  if (p.producers == 0) throw std::invalid_argument("producer_consumer: at least one producer");
  if (p.consumers == 0 && !consumers_are_pool) throw std::invalid_argument("producer_consumer: at least one consumer");
  if (p.capacity == 0) throw std::invalid_argument("producer_consumer: capacity must be at least 1");
  if (p.rate_per_s < 0) throw std::invalid_argument("producer_consumer: rate must not be negative");
  if (p.rate_per_s > 0) pace_.emplace(Clock::now() + kPaceLead, p.rate_per_s);
}

void Group::fail(std::exception_ptr error) {
  {
    std::lock_guard lock(mutex_);
    if (!outcome_.error) outcome_.error = error;
  }
  stopping_.store(true, std::memory_order_relaxed);
}

bool Group::producer_done(const Producer& producer, bool closed) {
  {
    std::lock_guard lock(mutex_);
    outcome_.sent += producer.sent_count();
    outcome_.blocked_sends += producer.blocked_sends();
    outcome_.blocked += producer.blocked();
    if (closed) ++outcome_.producers_closed;
  }
  return producers_left_.fetch_sub(1, std::memory_order_acq_rel) == 1;
}

void Group::consumer_done(Consumer& consumer) {
  std::lock_guard lock(mutex_);
  outcome_.tally += consumer.tally();
  outcome_.latency.merge(consumer.latency());
}

Outcome Group::finish(std::uint64_t capacity) {
  std::lock_guard lock(mutex_);
  outcome_.capacity = capacity;
  return std::move(outcome_);
}

// ---- Parameters and models ---------------------------------------------------------

std::vector<Params> parameter_sets(Suite suite, Impl impl) {
  struct Shape {
    unsigned producers, consumers;
  };
  constexpr Shape kShapes[] = {{1, 1}, {1, 4}, {4, 1}, {4, 4}};
  constexpr std::uint64_t kCapacities[] = {1, 64, 1024};
  constexpr std::uint64_t kFewer = 100'000, kMany = 1'000'000;
  std::vector<Params> sets;
  for (const Shape& shape : kShapes) {
    if (impl == Impl::spsc_lockfree && (shape.producers != 1 || shape.consumers != 1)) continue;
    // parallel_pipeline has one input stage and runs both stages on the pool's
    // threads: P and C are not its to choose, so it runs once per Q and work.
    if (impl == Impl::thread_pool && (shape.producers != 1 || shape.consumers != 1)) continue;
    const bool square = shape.producers == shape.consumers;
    for (std::uint64_t capacity : kCapacities)
      for (std::uint64_t work_ns : {0, 1000}) {
        Params p{shape.producers, impl == Impl::thread_pool ? 0 : shape.consumers, capacity, kMany, work_ns};
        switch (suite) {
          case Suite::quick:  // every shape at work 0 with Q 1 and 64, on 100,000 messages
            if (work_ns > 0 || capacity == 1024) continue;
            p.messages = kFewer;
            break;
          case Suite::standard:
            // Every shape and Q at work 0, and consumers with work at Q = 64 on 1x1
            // and 4x4, on 1,000,000 messages where a message costs well under a
            // microsecond. With Q = 1, with work, or between threads that sleep,
            // each message costs a wake-up or a microsecond: 100,000 of them keep
            // the default run within its share.
            if (work_ns > 0 && (capacity != 64 || !square)) continue;
            if (capacity == 1 || work_ns > 0 || impl == Impl::threads_queue || impl == Impl::moodycamel)
              p.messages = kFewer;
            break;
          case Suite::full:
            break;
        }
        sets.push_back(p);
      }
  }
  return sets;
}

Outcome run(Impl impl, Runtimes& runtimes, const Params& p) {
  switch (impl) {
    case Impl::event_loop:
      return run_event_loop(runtimes.event_loop, p);
    case Impl::fibers:
      return run_fibers(runtimes.fibers, p);
    case Impl::fibers_mt:
      return run_fibers(runtimes.fibers_mt, p);
    case Impl::thread_pool:
      return run_thread_pool(runtimes.thread_pool, p);
    case Impl::threads_queue:
      return run_threads_queue(p);
    case Impl::moodycamel:
      return run_moodycamel(p);
    case Impl::spsc_lockfree:
      return run_spsc_lockfree(p);
  }
  throw std::logic_error("producer_consumer: unknown model");
}

}  // namespace concbench::producer_consumer
