// thread_pool: oneTBB's own idiom, parallel_pipeline, on the pool's threads. A
// serial input stage produces the messages (the P producers' streams merged in id
// order), a parallel stage consumes them, and at most Q tokens (messages) are in
// flight between the two: the bound. No thread waits on a full buffer: when the
// tokens run out the input stage simply is not run, and the pool's threads take
// whichever stage has work. So P and C are not the pipeline's to choose (it has
// one input stage and the pool's threads for the rest): it runs once per Q and
// work, as p:1 c:pool, and the blocked-time counters stay zero.
#include "workloads/producer_consumer/producer_consumer.hpp"

#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/parallel_pipeline.h>

#include <thread>

namespace concbench::producer_consumer {

Outcome run_thread_pool(ThreadPool& pool, const Params& p) {
  Group group(p, /*consumers_are_pool=*/true);
  tbb::enumerable_thread_specific<Consumer> consumers([&p] { return Consumer(p); });
  Params one_stream = p;
  one_stream.producers = 1;  // the input stage is one stream of every id
  Producer stream(one_stream, 0, group.pace());
  auto input = [&](tbb::flow_control& control) {
    if (stream.done() || group.stopping()) {
      control.stop();
      return Message{};
    }
    if (auto due = stream.not_yet_due()) {
      auto yield = [] { std::this_thread::yield(); };
      wait_until(*due, [&](Clock::time_point) { yield(); }, yield);  // a pool thread: never sleeps
    }
    stream.sent();
    return stream.next();
  };
  auto consume = [&](const Message& m) {
    if (group.stopping()) return;
    try {
      consumers.local().receive(m);
    } catch (...) {
      group.fail(std::current_exception());
    }
  };
  pool.run([&] {
    tbb::parallel_pipeline(p.capacity, tbb::make_filter<void, Message>(tbb::filter_mode::serial_in_order, input) &
                                           tbb::make_filter<Message, void>(tbb::filter_mode::parallel, consume));
  });
  group.producer_done(stream, group.stopping());
  for (Consumer& consumer : consumers) group.consumer_done(consumer);
  return group.finish(p.capacity);
}

}  // namespace concbench::producer_consumer
