// event_loop: every request is a coroutine on the one loop thread. Inline, a heavy
// call runs on that thread and every other request and tick waits behind it;
// offloaded, the request's coroutine suspends on async_offload (thread pool) or
// ProcessPool::async_run (process pool) and the loop keeps serving.
#include "workloads/blocking_stall/blocking_stall.hpp"

#include "models/offload.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace concbench::blocking_stall {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct LoopRun {
  Runtimes& runtimes;
  const Params& p;
  Measurements& m;
  std::vector<Request> requests;
  Clock::time_point start;
  asio::steady_timer all_done;  // cancelled by the last request to end
  Outcome outcome;
  std::size_t running = 0;
  bool arrivals_over = false, finished = false;
};

asio::awaitable<void> serve(LoopRun& run, Request r) {
  std::optional<std::uint64_t> result;
  try {
    const Params& p = run.p;
    if (!r.heavy) {
      result = light_work(r.id);
    } else if (p.offload == Offload::inline_call) {
      const Timed call = heavy_inline(p, r.id);
      run.m.stall.record(call.took);
      result = call.value;
    } else if (p.offload == Offload::threads) {
      result = co_await async_offload(
          run.runtimes.thread_pool, [&p, id = r.id] { return heavy_work(p.kind, p.work_us, p.cpu_bytes, id); },
          asio::use_awaitable);
    } else {
      result = heavy_reply(
          co_await run.runtimes.process_pool.async_run(heavy_task, heavy_message(p, r.id), asio::use_awaitable));
    }
  } catch (const std::exception&) {
    result.reset();  // counted as failed
  }
  finish(r, run.start, result, run.outcome, run.m);
  if (--run.running == 0 && run.arrivals_over) run.all_done.cancel();
}

// Starts each request at its scheduled arrival (late ones at once, one after another),
// then waits for the last to end.
asio::awaitable<void> arrivals(LoopRun& run) {
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor);
  for (const Request& r : run.requests) {
    timer.expires_at(run.start + r.arrival);
    co_await timer.async_wait(asio::use_awaitable);
    ++run.running;
    asio::co_spawn(executor, serve(run, r), asio::detached);
  }
  run.arrivals_over = true;
  if (run.running > 0) co_await run.all_done.async_wait(asio::as_tuple(asio::use_awaitable));
  run.finished = true;
}

// The hiccup meter: how late each 1 ms tick fires.
asio::awaitable<void> ticker(LoopRun& run) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (auto tick = run.start + 1ms; !run.finished; tick += 1ms) {
    timer.expires_at(tick);
    co_await timer.async_wait(asio::use_awaitable);
    run.m.lag.record(Clock::now() - tick);
  }
}

asio::awaitable<Outcome> serve_all(Runtimes& runtimes, const Params& p, Measurements& m) {
  using namespace asio::experimental::awaitable_operators;
  // Not co_await inside the braces: GCC 12 miscompiles co_await in aggregate
  // initialisers (the object came out corrupted).
  auto executor = co_await asio::this_coro::executor;
  LoopRun run{runtimes, p, m, schedule(p), Clock::now(), asio::steady_timer(executor), {}};
  run.all_done.expires_at(Clock::time_point::max());
  co_await (arrivals(run) && ticker(run));
  co_return run.outcome;
}

}  // namespace

Outcome run_event_loop(Runtimes& runtimes, const Params& p, Measurements& m) {
  return runtimes.event_loop.run(serve_all(runtimes, p, m));
}

}  // namespace concbench::blocking_stall
