// threads_queue: P + C dedicated threads around a oneTBB concurrent_bounded_queue
// of capacity Q, the classic blocking queue between threads. A full queue blocks
// the producer's thread (after a short spin, oneTBB parks it), an empty one the
// consumer's: every wait that does not end within the spin costs a sleep and a
// wake-up from the kernel.
//
// The queue has no close: the last producer sends one end-of-stream message per
// consumer, after every message since the queue is one FIFO; a failure aborts the waiting threads (abort() is not sticky, hence the
// repeated close in producer_consumer_threads.hpp).
#include "workloads/producer_consumer/producer_consumer_threads.hpp"

#include <oneapi/tbb/concurrent_queue.h>

namespace concbench::producer_consumer {

namespace {

class TbbQueue {
 public:
  TbbQueue(std::uint64_t capacity, unsigned consumers) : consumers_(consumers) {
    queue_.set_capacity(static_cast<std::ptrdiff_t>(capacity));
  }

  bool try_send(const Message& m) { return queue_.try_push(m); }
  bool send(const Message& m) {
    try {
      queue_.push(m);
      return true;
    } catch (const tbb::user_abort&) {
      return false;
    }
  }
  std::optional<Message> receive() {
    Message m;
    try {
      queue_.pop(m);
    } catch (const tbb::user_abort&) {
      return std::nullopt;
    }
    if (m.id == kEndOfStream) return std::nullopt;
    return m;
  }
  // One FIFO: the last producer's end-of-stream messages come after every message.
  void producer_ended(bool last) {
    for (unsigned c = 0; last && c < consumers_; ++c)
      if (!send(Message{kEndOfStream})) return;
  }
  void close() { queue_.abort(); }

 private:
  tbb::concurrent_bounded_queue<Message> queue_;
  unsigned consumers_;
};

}  // namespace

Outcome run_threads_queue(const Params& p) {
  Group group(p);
  TbbQueue queue(p.capacity, p.consumers);
  return run_on_threads(group, queue, p.capacity);
}

}  // namespace concbench::producer_consumer
