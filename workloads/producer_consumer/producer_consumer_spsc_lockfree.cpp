// spsc_lockfree (baseline): one producer thread and one consumer thread around a
// boost::lockfree::spsc_queue of capacity Q, and neither ever sleeps: a full or
// empty queue is polled in a spin loop (which yields now and then, for machines
// where the two threads share a core). This is the hand-off with no waiting at
// all, the limit every model is compared with at 1x1; the price is two cores kept
// busy for the whole run (the process CPU time shows it), so it is a baseline,
// not a design to copy.
#include "workloads/producer_consumer/producer_consumer_threads.hpp"

#include <boost/lockfree/spsc_queue.hpp>

#include <stdexcept>

namespace concbench::producer_consumer {

namespace {

// One step of a spin loop. Every kSpinsPerYield steps it yields the core: on a
// machine where both threads share one core, pure spinning would let the other
// side run only once per scheduler slice.
class Spinner {
 public:
  void pause() {
    if (++spins_ % kSpinsPerYield == 0) {
      std::this_thread::yield();
      return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

 private:
  static constexpr unsigned kSpinsPerYield = 1024;
  unsigned spins_ = 0;
};

class SpscQueue {
 public:
  SpscQueue(std::uint64_t capacity, const Group& group) : queue_(capacity), group_(group) {}

  bool try_send(const Message& m) { return queue_.push(m); }
  bool send(const Message& m) {
    for (Spinner spinner; !queue_.push(m); spinner.pause())
      if (group_.stopping()) return false;
    return true;
  }
  std::optional<Message> receive() {
    Message m;
    for (Spinner spinner;; spinner.pause()) {
      if (queue_.pop(m)) return m;
      // The producer pushed its last message before it set ended_: one more pop
      // after seeing ended_ finds anything still in the queue.
      if (ended_.load(std::memory_order_acquire)) return queue_.pop(m) ? std::optional(m) : std::nullopt;
      if (group_.stopping()) return std::nullopt;
    }
  }
  void producer_ended(bool) { ended_.store(true, std::memory_order_release); }
  void close() {}  // nobody sleeps: both loops watch the group's stop flag

 private:
  boost::lockfree::spsc_queue<Message> queue_;
  const Group& group_;
  std::atomic<bool> ended_{false};
};

}  // namespace

Outcome run_spsc_lockfree(const Params& p) {
  if (p.producers != 1 || p.consumers != 1)
    throw std::invalid_argument("spsc_lockfree: one producer and one consumer only, got " + to_string(p));
  Group group(p);
  SpscQueue queue(p.capacity, group);
  return run_on_threads(group, queue, p.capacity);
}

}  // namespace concbench::producer_consumer
