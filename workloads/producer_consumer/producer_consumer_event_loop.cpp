// event_loop: P + C coroutines on the loop's one thread around an asio
// experimental::channel of capacity Q, as asyncio.Queue is used. A send or
// receive that can complete at once does (try_send / try_receive); otherwise the
// coroutine suspends until the other side makes room or a message.
//
// The end: asio's channel drops buffered messages when it is closed, so the last
// producer sends one end-of-stream message per consumer after its own. A failing
// consumer closes the channel (later sends fail) and cancels it (waiting sends and
// receives complete at once with an error).
#include "workloads/producer_consumer/producer_consumer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <future>

namespace concbench::producer_consumer {

namespace {

using boost::system::error_code;
using Channel = asio::experimental::channel<void(error_code, Message)>;
constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);

// Sends `m` once the channel has room (the caller tried try_send first, so that a
// send that can complete at once costs no coroutine frame); false when the channel
// was closed or cancelled.
asio::awaitable<bool> send_when_room(Channel& channel, const Message& m, Producer* blocked_producer) {
  if (!channel.is_open()) co_return false;
  const auto since = Clock::now();
  auto [ec] = co_await channel.async_send(error_code{}, m, kAwait);
  if (blocked_producer != nullptr && !ec) blocked_producer->blocked_since(since);
  co_return !ec;
}

asio::awaitable<void> wait_until(Clock::time_point due) {
  auto executor = co_await asio::this_coro::executor;
  for (auto now = Clock::now(); now < due; now = Clock::now()) {
    if (auto until = sleep_target(due, now)) {
      asio::steady_timer timer(executor, *until);
      co_await timer.async_wait(kAwait);
    } else {
      co_await asio::post(executor, asio::use_awaitable);  // let the consumers run
    }
  }
}

asio::awaitable<void> produce(Channel& channel, Group& group, unsigned index) {
  Producer producer(group.params(), index, group.pace());
  bool closed = false;
  while (!producer.done() && !closed) {
    if (auto due = producer.not_yet_due()) co_await wait_until(*due);
    const Message m = producer.next();
    closed = !channel.try_send(error_code{}, m) && !(co_await send_when_room(channel, m, &producer));
    if (!closed) producer.sent();
  }
  if (group.producer_done(producer, closed) && !closed)
    for (unsigned c = 0; c < group.params().consumers; ++c) {
      const Message end{kEndOfStream};
      if (!channel.try_send(error_code{}, end) && !(co_await send_when_room(channel, end, nullptr))) break;
    }
}

asio::awaitable<void> consume(Channel& channel, Group& group, Consumer& consumer) {
  for (;;) {
    Message m;
    error_code ec;
    if (!channel.try_receive([&](error_code e, Message got) { ec = e, m = got; }))
      std::tie(ec, m) = co_await channel.async_receive(kAwait);
    if (ec || m.id == kEndOfStream || group.stopping()) break;
    try {
      consumer.receive(m);
    } catch (...) {
      group.fail(std::current_exception());
      channel.close();
      channel.cancel();
      break;
    }
  }
  group.consumer_done(consumer);
}

}  // namespace

Outcome run_event_loop(EventLoop& loop, const Params& p) {
  Group group(p);
  Channel channel(loop.context(), p.capacity);
  std::vector<Consumer> consumers = make_consumers(p);
  std::promise<void> all_ended;
  unsigned live = p.producers + p.consumers;  // touched on the loop's thread only
  auto ended = [&](std::exception_ptr error) {
    if (error) {
      group.fail(error);
      channel.close();
      channel.cancel();
    }
    if (--live == 0) all_ended.set_value();
  };
  asio::post(loop.context(), [&] {
    for (Consumer& consumer : consumers) asio::co_spawn(loop.context(), consume(channel, group, consumer), ended);
    for (unsigned i = 0; i < p.producers; ++i) asio::co_spawn(loop.context(), produce(channel, group, i), ended);
  });
  all_ended.get_future().wait();
  // The last coroutine's frame may still be on its way out on the loop thread.
  asio::post(loop.context(), asio::use_future).get();
  return group.finish(p.capacity);
}

}  // namespace concbench::producer_consumer
