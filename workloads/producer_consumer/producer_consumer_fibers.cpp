// fibers and fibers_mt: P + C fibers around a boost::fibers::buffered_channel, as
// goroutines share a buffered channel. A full channel suspends the producing
// fiber, an empty one the consuming fiber; the thread runs the others meanwhile.
// On the round_robin pool all of them share one thread; on the work_stealing pool
// they spread over its threads, and a hand-off may wake another thread.
//
// buffered_channel's capacity must be a power of two and it keeps one slot free,
// so it holds bit_ceil(Q) - 1 messages: Q for Q = 1, one less than Q for 64 and
// 1024 (the capacity counter says so). Closing lets consumers drain what is left.
#include "workloads/producer_consumer/producer_consumer.hpp"

#include <boost/fiber/buffered_channel.hpp>
#include <boost/fiber/operations.hpp>

#include <bit>

namespace concbench::producer_consumer {

namespace {

using Channel = boost::fibers::buffered_channel<Message>;
using boost::fibers::channel_op_status;

void produce(Channel& channel, Group& group, unsigned index) {
  Producer producer(group.params(), index, group.pace());
  bool closed = false;
  while (!producer.done() && !closed) {
    if (auto due = producer.not_yet_due())
      wait_until(
          *due, [](Clock::time_point t) { boost::this_fiber::sleep_until(t); }, [] { boost::this_fiber::yield(); });
    const Message m = producer.next();
    auto status = channel.try_push(m);
    if (status == channel_op_status::full) {
      const auto since = Clock::now();
      status = channel.push(m);
      if (status == channel_op_status::success) producer.blocked_since(since);
    }
    closed = status != channel_op_status::success;
    if (!closed) producer.sent();
  }
  if (group.producer_done(producer, closed)) channel.close();
}

void consume(Channel& channel, Group& group, Consumer& consumer) {
  Message m;
  while (!group.stopping() && channel.pop(m) == channel_op_status::success) {
    try {
      consumer.receive(m);
    } catch (...) {
      group.fail(std::current_exception());
      channel.close();
      break;
    }
  }
  group.consumer_done(consumer);
}

}  // namespace

Outcome run_fibers(FiberPool& pool, const Params& p) {
  Group group(p);
  const std::size_t slots = std::max<std::size_t>(2, std::bit_ceil(p.capacity));
  Channel channel(slots);
  std::vector<Consumer> consumers = make_consumers(p);
  pool.run([&] {
    std::vector<boost::fibers::future<void>> tasks;
    tasks.reserve(p.producers + p.consumers);
    try {
      for (Consumer& consumer : consumers)
        tasks.push_back(pool.submit([&] { consume(channel, group, consumer); }));
      for (unsigned i = 0; i < p.producers; ++i) tasks.push_back(pool.submit([&, i] { produce(channel, group, i); }));
    } catch (...) {  // the fibers already started use this stack: close and wait for them
      group.fail(std::current_exception());
      channel.close();
    }
    for (auto& task : tasks) {
      try {
        task.get();
      } catch (...) {  // not the consumers' own errors: those they report themselves
        group.fail(std::current_exception());
        channel.close();
      }
    }
  });
  return group.finish(slots - 1);
}

}  // namespace concbench::producer_consumer
