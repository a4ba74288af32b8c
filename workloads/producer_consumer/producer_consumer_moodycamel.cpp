// moodycamel (baseline): P + C dedicated threads around moodycamel's
// BlockingConcurrentQueue, a lock-free MPMC queue whose waits spin briefly before
// they sleep on a semaphore: a well-tuned queue between threads, the limit the
// threads_queue model is measured against. The queue is unbounded, so a second
// semaphore holding Q permits is the bound: a producer takes a permit before it
// enqueues, a consumer returns one after it dequeues.
//
// The queue has no close, and its order is FIFO per producer only (each producer
// thread has a sub-queue of its own): a message of one producer can come out after
// the end message of another. So each producer ends its own stream with a marker
// (outside the bound); the consumer that takes the P-th marker has seen every
// stream drained, and sends the other consumers an end-of-stream message each.
// Closing after a failure releases every waiting producer and wakes every
// consumer with an end-of-stream message.
#include "workloads/producer_consumer/producer_consumer_threads.hpp"

#include <concurrentqueue/blockingconcurrentqueue.h>
#include <concurrentqueue/lightweightsemaphore.h>

namespace concbench::producer_consumer {

namespace {

class MoodycamelQueue {
 public:
  MoodycamelQueue(std::uint64_t capacity, unsigned producers, unsigned consumers)
      : room_(static_cast<moodycamel::LightweightSemaphore::ssize_t>(capacity)),
        producers_(producers),
        consumers_(consumers) {}

  bool try_send(const Message& m) { return room_.tryWait() && enqueue(m); }
  bool send(const Message& m) { return room_.wait() && enqueue(m); }
  std::optional<Message> receive() {
    for (Message m;;) {
      queue_.wait_dequeue(m);
      if (m.id == kEndOfStream) return std::nullopt;
      if (m.id != kStreamEnded) {
        room_.signal();
        return m;
      }
      if (streams_ended_.fetch_add(1) + 1 == producers_) {
        stop_consumers(consumers_ - 1);
        return std::nullopt;
      }
    }
  }
  void producer_ended(bool) { queue_.enqueue(Message{kStreamEnded}); }
  // Sticky: the permits and end-of-stream messages stay for threads that wait later.
  void close() {
    if (closed_.exchange(true)) return;
    room_.signal(1 << 16);  // more than the producers can be waiting for
    stop_consumers(consumers_);
  }

 private:
  static constexpr std::uint64_t kStreamEnded = kEndOfStream - 1;

  void stop_consumers(unsigned count) {
    for (unsigned c = 0; c < count; ++c) queue_.enqueue(Message{kEndOfStream});
  }
  bool enqueue(const Message& m) {
    if (closed_.load(std::memory_order_relaxed)) return false;
    return queue_.enqueue(m);
  }

  moodycamel::BlockingConcurrentQueue<Message> queue_;
  moodycamel::LightweightSemaphore room_;
  unsigned producers_, consumers_;
  std::atomic<unsigned> streams_ended_{0};
  std::atomic<bool> closed_{false};
};

}  // namespace

Outcome run_moodycamel(const Params& p) {
  Group group(p);
  MoodycamelQueue queue(p.capacity, p.producers, p.consumers);
  return run_on_threads(group, queue, p.capacity);
}

}  // namespace concbench::producer_consumer
