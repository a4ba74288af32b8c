#pragma once
// What the models whose producers and consumers are dedicated threads share
// (threads_queue, moodycamel, spsc_lockfree): P + C threads started for the run,
// the producer and consumer loops, and how a failure stops the group. A model
// file supplies only its queue:
//
//   bool try_send(const Message&)      takes it if there is room, at once
//   bool send(const Message&)          waits for room; false once closed
//   std::optional<Message> receive()   waits for one; nullopt at the end or once closed
//   void producer_ended(bool last)     a producer sent all it had (last: all of them have);
//                                      consumers must stop once every message is received
//   void close()                       wakes every thread waiting in the queue
//
// close() is called again and again until every other thread has ended: a queue
// whose wake-up is not sticky (oneTBB's abort) cannot leave a thread that started
// waiting just after it.
#include "workloads/producer_consumer/producer_consumer.hpp"

#include <thread>

namespace concbench::producer_consumer {

template <class Queue>
Outcome run_on_threads(Group& group, Queue& queue, std::uint64_t capacity) {
  const Params& p = group.params();
  std::atomic<unsigned> live{0};  // threads started and not yet ended
  // A task that failed stops the group and closes the queue until the others ended.
  auto fail = [&](std::exception_ptr error) {
    group.fail(error);
    live.fetch_sub(1);
    while (live.load() > 0) {
      queue.close();
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  };
  auto produce = [&](unsigned index) {
    try {
      Producer producer(p, index, group.pace());
      bool closed = false;
      while (!producer.done() && !(closed = group.stopping())) {
        if (auto due = producer.not_yet_due())
          wait_until(
              *due, [](Clock::time_point t) { std::this_thread::sleep_until(t); }, [] { std::this_thread::yield(); });
        const Message m = producer.next();
        if (!queue.try_send(m)) {
          const auto since = Clock::now();
          closed = !queue.send(m);
          if (!closed) producer.blocked_since(since);
        }
        if (closed) break;
        producer.sent();
      }
      const bool last = group.producer_done(producer, closed);
      if (!closed) queue.producer_ended(last);
    } catch (...) {
      return fail(std::current_exception());
    }
    live.fetch_sub(1);
  };
  auto consume = [&] {
    std::optional<Consumer> consumer;
    try {
      consumer.emplace(p);
      while (!group.stopping()) {
        auto m = queue.receive();
        if (!m) break;
        consumer->receive(*m);
      }
    } catch (...) {
      if (consumer) group.consumer_done(*consumer);
      return fail(std::current_exception());
    }
    group.consumer_done(*consumer);
    live.fetch_sub(1);
  };
  {
    std::vector<std::jthread> threads;
    threads.reserve(p.producers + p.consumers);
    try {
      for (unsigned c = 0; c < p.consumers; ++c) {
        live.fetch_add(1);
        threads.emplace_back(consume);
      }
      for (unsigned i = 0; i < p.producers; ++i) {
        live.fetch_add(1);
        threads.emplace_back(produce, i);
      }
    } catch (...) {
      // A thread that could not start: the ones started would wait for it forever.
      // It was counted as live; fail() ends it and closes the queue until they end.
      fail(std::current_exception());
    }
  }
  return group.finish(capacity);
}

}  // namespace concbench::producer_consumer
