#pragma once
// producer_consumer: P producers send M messages through a buffer of capacity Q to
// C consumers. A producer that finds the buffer full waits until there is room
// (backpressure); once every producer is done the buffer is closed, and consumers
// drain what is left and stop.
//
// This is asyncio.Queue, Go's buffered channel, a worker pool fed by a queue. It
// stresses the hand-off itself: with Q = 1 every message passes from a producer
// to a consumer that is waiting for it (a context switch or a thread wake-up per
// message); with Q = 1024 both sides run in batches and the hand-off cost spreads
// over many messages. work_ns = 1000 gives each message some CPU on the consumer
// side, so the buffer fills and producers block. So it answers: what does a
// channel hand-off cost on each model, how do P and C change it, and what does a
// blocked producer cost? Two limits run beside the models, labelled baselines: a
// lock-free single-producer queue whose two threads spin (`spsc_lockfree`, 1x1
// only: the hand-off with no waiting at all) and a tuned lock-free MPMC queue
// between threads (`moodycamel`).
//
// Producer p sends ids p, p + P, p + 2P, ... < M, so that at a paced rate R the
// whole stream follows one schedule: id i is due at start + i / R. A message
// carries a payload derived from its id, which the consumer checks; consumers
// fold mix(id) into a sum. A run is right when the count is M, the sum equals the
// reference's and no payload was wrong: a lost, doubled or corrupted message
// fails it.
#include "models/runtimes.hpp"
#include "workloads/latency.hpp"
#include "workloads/suite.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace concbench::producer_consumer {

using Clock = std::chrono::steady_clock;

// The models of this workload: the project's models plus one more thread-based
// variant and two labelled baselines.
enum class Impl { event_loop, fibers, fibers_mt, thread_pool, threads_queue, moodycamel, spsc_lockfree };
inline constexpr Impl kImpls[] = {Impl::event_loop,    Impl::fibers,     Impl::fibers_mt,    Impl::thread_pool,
                                  Impl::threads_queue, Impl::moodycamel, Impl::spsc_lockfree};
std::string_view impl_name(Impl impl);
// The ones whose thread count follows --workers; the others use their own P + C
// threads or fibers on one thread.
bool follows_workers(Impl impl);

inline constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();

struct Params {
  unsigned producers = 1;
  unsigned consumers = 1;
  std::uint64_t capacity = 64;  // Q
  std::uint64_t messages = 0;   // M
  std::uint64_t work_ns = 0;    // CPU per message on the consumer side
  // Open-loop pacing: messages per second offered in total (0: as fast as they go).
  double rate_per_s = 0;
  // Paced: latency is recorded for one message in this many, chosen by a hash of
  // the id (so every producer's messages are sampled alike). Reading the clock for
  // each message costs about as much as a fast hand-off, the thing measured.
  std::uint64_t latency_sampling = 1;
  // Tests: the consumer that receives this id throws.
  std::uint64_t fail_at = kNever;
};
std::string to_string(const Params& p);

struct Message {
  std::uint64_t id = 0;
  std::uint64_t payload = 0;
  Clock::rep due = 0;  // paced runs: when it was scheduled to be sent (Clock ticks)
};
// A message that tells a consumer the stream ended, for buffers that cannot be
// closed with messages still in them (asio's channel drops them, oneTBB's and
// moodycamel's queues have no close).
inline constexpr std::uint64_t kEndOfStream = kNever;
std::uint64_t payload_of(std::uint64_t id);

// What the consumers received, summed over all of them.
struct Tally {
  std::uint64_t count = 0;
  std::uint64_t id_sum = 0;        // sum of mix(id), wrapping
  std::uint64_t bad_payloads = 0;  // messages whose payload did not match their id
  Tally& operator+=(const Tally& other);
  bool operator==(const Tally&) const = default;
};
std::string to_string(const Tally& t);

// What every model must receive: M messages, each id once, every payload right.
Tally reference(const Params& p);

// One run's outcome. A run that a consumer's exception stopped has `error` set;
// the producers it stopped found the buffer closed.
struct Outcome {
  Tally tally;
  std::uint64_t sent = 0;           // messages the producers put in the buffer
  std::uint64_t blocked_sends = 0;  // sends that found the buffer full and waited
  Clock::duration blocked{};        // producers' time waiting for room, summed
  unsigned producers_closed = 0;    // producers that stopped at a closed buffer
  std::uint64_t capacity = 0;       // the buffer's capacity as built (see each model)
  LatencyRecorder latency;          // paced runs: from each message's due time
  std::exception_ptr error;
};
std::string to_string(const Outcome& o);
// Right when nothing failed, every message was sent once and the tally is the
// reference's.
bool matches(const Outcome& got, const Tally& want);
// Whether the latency of message `id` is recorded at this sampling.
bool sampled(std::uint64_t id, std::uint64_t sampling);

// ---- The kernel, written once ------------------------------------------------------

// Consumer CPU work: a dependent chain of mixes, calibrated once per process to
// take about work_ns.
std::uint64_t spin_iterations(std::uint64_t work_ns);
double spin_ns_per_iteration();  // the calibration, for the run's context

// One producer's stream: its ids, their payloads and, when paced, their due times.
class Producer {
 public:
  Producer(const Params& p, unsigned index, std::optional<OpenLoopSchedule> pace);
  bool done() const { return next_ >= messages_; }
  // Paced: when the next message is due, if not yet; nullopt when it may go now
  // (or when not paced). Reads the clock only when its last reading says the
  // message is not due, so a producer behind its schedule sends a batch on one
  // reading: the clock costs about as much as a hand-off.
  std::optional<Clock::time_point> not_yet_due();
  Message next();  // the next message; call sent() once the buffer took it

  void sent() { ++sent_; }
  // A send that found the buffer full and waited since `since`.
  void blocked_since(Clock::time_point since) {
    ++blocked_sends_;
    blocked_ += Clock::now() - since;
  }

  std::uint64_t sent_count() const { return sent_; }
  std::uint64_t blocked_sends() const { return blocked_sends_; }
  Clock::duration blocked() const { return blocked_; }

 private:
  std::uint64_t next_, step_, messages_;
  std::optional<OpenLoopSchedule> pace_;
  Clock::time_point now_{};  // the last clock reading (paced)
  std::uint64_t sent_ = 0, blocked_sends_ = 0;
  Clock::duration blocked_{};
};

// How a paced producer waits for its next message: it sleeps while the message is
// far off, but a timer wakes late (tens of microseconds on Linux), so for the last
// stretch it yields, letting consumers on its thread run.
inline constexpr auto kYieldWindow = std::chrono::microseconds(200);
// nullopt: yield (or send, if already due); else sleep until the time returned.
std::optional<Clock::time_point> sleep_target(Clock::time_point due, Clock::time_point now);

// Waits until `due` with the model's own sleep_until(time) and yield().
template <class SleepUntil, class Yield>
void wait_until(Clock::time_point due, SleepUntil sleep_until, Yield yield) {
  for (auto now = Clock::now(); now < due; now = Clock::now()) {
    if (auto until = sleep_target(due, now))
      sleep_until(*until);
    else
      yield();
  }
}

// One consumer's side: checks each message, does the work, folds it in, and when
// paced records the latency of the sampled ones.
class Consumer {
 public:
  explicit Consumer(const Params& p);
  // Throws at the message id p.fail_at (tests: a consumer that fails).
  void receive(const Message& m);
  const Tally& tally() const { return tally_; }
  LatencyRecorder& latency() { return latency_; }

 private:
  std::uint64_t work_iterations_, fail_at_, sampling_;
  bool paced_;
  Tally tally_;
  LatencyRecorder latency_;
};
// C consumers, each built in place (a copy would drop its reserved latency buffer).
std::vector<Consumer> make_consumers(const Params& p);

// What the P + C tasks of one run share: the first error, the flag that stops the
// group, the count of producers still sending (the last one closes the buffer),
// and the outcome each task adds to when it ends. Thread-safe; the lock is taken
// once per task, never per message.
class Group {
 public:
  // consumers_are_pool: the model has no consumers of its own (parallel_pipeline),
  // so C = 0 is allowed.
  explicit Group(const Params& p, bool consumers_are_pool = false);
  const Params& params() const { return p_; }
  std::optional<OpenLoopSchedule> pace() const { return pace_; }

  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
  // Keeps the first error and stops the group; the model then closes its buffer.
  void fail(std::exception_ptr error);
  // A producer's stream ended (or the buffer closed under it); true for the last
  // one, which closes the buffer or sends the end-of-stream messages.
  bool producer_done(const Producer& producer, bool closed);
  void consumer_done(Consumer& consumer);

  // Once every task ended: the outcome, with the buffer's capacity as built.
  Outcome finish(std::uint64_t capacity);

 private:
  Params p_;
  std::optional<OpenLoopSchedule> pace_;
  std::atomic<bool> stopping_{false};
  std::atomic<unsigned> producers_left_;
  std::mutex mutex_;
  Outcome outcome_;
};

// ---- Parameters and models -------------------------------------------------------

// The parameter sets of one suite for a model (spsc_lockfree: 1x1 only;
// thread_pool: one set per Q and work, see its file).
std::vector<Params> parameter_sets(Suite suite, Impl impl);

Outcome run_event_loop(EventLoop& loop, const Params& p);
Outcome run_fibers(FiberPool& pool, const Params& p);  // fibers and fibers_mt
Outcome run_thread_pool(ThreadPool& pool, const Params& p);
Outcome run_threads_queue(const Params& p);
Outcome run_moodycamel(const Params& p);
Outcome run_spsc_lockfree(const Params& p);

Outcome run(Impl impl, Runtimes& runtimes, const Params& p);

}  // namespace concbench::producer_consumer
