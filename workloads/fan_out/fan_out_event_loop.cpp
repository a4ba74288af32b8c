// event_loop: one coroutine per request on the loop's one thread. The cap is a
// buffered channel of K slots (Go's semaphore idiom on Asio's channel), and the
// launcher takes a slot before it starts each request, as errgroup.SetLimit's Go()
// and `sem <- struct{}{}; go ...` do: at most K coroutines exist at a time.
// Starting all N at once, each waiting for its slot inside (asyncio's gather of N
// tasks around a Semaphore), kept N frames alive: each request ran on memory
// allocated long before, cold in the cache, and gave it back through malloc's slow
// paths, about a fifth of the client's user time per request. The timeout is the
// connection's deadline (deadline.hpp), which closes the socket on expiry.
// Fail-fast cancels every connection in use, and the launcher, woken by the slot
// the failing request freed, starts no more; a request between two operations
// stops before the next, and the requests never started end as cancelled.
//
// The coroutines, the channel and the sockets use the io_context's own executor
// type: Asio's default, the type-erased any_io_executor (which co_spawn makes
// count outstanding work), is copied in every operation and every handler, and
// those copies were a tenth of the client's time per request. The launcher is the
// exception (EventLoop::run takes Asio's default awaitable); it waits once per
// batch of freed slots, not once per request.
#include "workloads/fan_out/fan_out.hpp"

#include "workloads/fan_out/fan_out_http.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>

namespace concbench::fan_out {

namespace {

using Clock = std::chrono::steady_clock;
using boost::system::error_code;

using Executor = asio::io_context::executor_type;
template <class T>
using Task = asio::awaitable<T, Executor>;
constexpr asio::use_awaitable_t<Executor> use_task;

using Connection = AsyncConnection;

struct FanOut {
  FanOut(asio::io_context& context, const Target& target, const Expected& e, Measurements& m)
      : e(e),
        m(m),
        executor(context.get_executor()),
        endpoint(endpoint_of(target)),
        permits(executor, e.p.k),
        all_ended(executor) {}

  const Expected& e;
  Measurements& m;
  Executor executor;
  asio::ip::tcp::endpoint endpoint;
  Tally tally;
  asio::experimental::channel<Executor, void(error_code)> permits;  // one buffered message per request running
  std::vector<std::unique_ptr<Connection>> all;  // every connection, at most K
  std::vector<Connection*> idle;                 // those without a request on them
  std::uint64_t running = 0;  // started and not ended
  asio::steady_timer::rebind_executor<Executor>::other all_ended;  // cancelled by the last request to end
  bool stopping = false;  // group:all after a failure, or a fatal error
  Clock::time_point first_failure;
  std::exception_ptr fatal;  // the server unreachable or a wrong answer: the run fails

  // After the first failure (group:all) or a fatal error, every other request stops.
  // cancel() ends the socket operation pending now; an exchange whose wait had just
  // completed with part of an answer waits again, which the cancel did not reach,
  // and that request ends with its answer or its deadline: later, which cancel_us shows.
  void stop_all() {
    if (stopping) return;
    stopping = true;
    first_failure = Clock::now();
    error_code ignored;
    for (auto& c : all)
      if (c->busy) c->socket.cancel(ignored);
  }

  // Throws as a cancelled operation would: called before each operation, it stops
  // a request whose cancel came between two of them.
  void throw_if_stopping() const {
    if (stopping) throw boost::system::system_error(asio::error::operation_aborted);
  }
};

// Sends request `id` on `c` and reads its answer, all within the timeout.
Task<Ending> exchange(FanOut& f, Connection& c, std::uint64_t id) {
  c.deadline.start(Clock::now() + f.e.p.timeout);
  if (!c.socket.is_open()) {
    c.buffer.clear();  // what an earlier connection left
    f.throw_if_stopping();
    co_await c.socket.async_connect(f.endpoint, use_task);
  }
  ResponseReader response(f.e.p, c.body);
  f.throw_if_stopping();
  co_await c.async_exchange(id, response, use_task);
  c.deadline.stop();
  const Ending ending = record_response(f.tally, f.e, id, response.status(), response.body());
  if (!response.keep_alive()) c.disconnect();
  co_return ending;
}

// Request `id`, started by the launcher at `start` with a slot taken for it.
Task<void> fetch(FanOut& f, std::uint64_t id, Clock::time_point start) {
  std::optional<Ending> ending;  // none: it never got its answer
  try {
    struct Release {
      FanOut& f;
      ~Release() { f.permits.try_receive([](error_code) {}); }
    } release{f};
    if (!f.stopping) {
      if (f.idle.empty())  // fewer than K connections so far
        f.idle.push_back(f.all.emplace_back(std::make_unique<Connection>(f.executor, f.e.p, f.endpoint)).get());
      // Back to the idle list at the end; one whose exchange did not finish is
      // closed first (its next request reconnects).
      struct Lease {
        FanOut& f;
        Connection& c;
        bool finished = false;
        ~Lease() {
          if (!finished) c.disconnect();
          c.busy = false;
          f.idle.push_back(&c);
        }
      } lease{f, *f.idle.back()};
      f.idle.pop_back();
      lease.c.busy = true;
      try {
        ending = co_await exchange(f, lease.c, id);
        lease.finished = true;
      } catch (const boost::system::system_error&) {
        if (!lease.c.deadline.expired()) throw;
        f.tally.end(id, Ending::timed_out);  // the deadline closed the connection
        ending = Ending::timed_out;
      }
      f.m.latency.record(Clock::now() - start);
    }
  } catch (const boost::system::system_error& error) {
    // Cancelled by a failing sibling, or an I/O error that no request should meet
    // on loopback (refused, reset): that one fails the run.
    const bool cancelled = error.code() == asio::error::operation_aborted;
    if (!cancelled && !f.fatal) f.fatal = std::make_exception_ptr(unreachable(f.endpoint, error.code()));
  } catch (...) {
    if (!f.fatal) f.fatal = std::current_exception();
  }
  if (!ending) f.tally.end(id, Ending::cancelled);
  if (f.fatal || (f.e.p.group == Group::all && ending && *ending != Ending::ok)) f.stop_all();
  if (--f.running == 0) {
    if (f.stopping) f.m.cancel = Clock::now() - f.first_failure;
    f.all_ended.cancel();
  }
}

asio::awaitable<Outcome> fan_out(asio::io_context& context, const Target& target, const Expected& e,
                                 Measurements& m) {
  FanOut f(context, target, e, m);
  f.all_ended.expires_at(Clock::time_point::max());
  std::uint64_t id = 0;
  for (; id < e.p.n && !f.stopping; ++id) {
    // Every slot freed since the last wait is taken at once: waiting for each one
    // would start one request per trip round the loop, too few to keep K in flight.
    if (!f.permits.try_send(error_code{})) {
      co_await f.permits.async_send(error_code{}, asio::use_awaitable);
      if (f.stopping) break;  // the slot that woke it was freed by the failing request
    }
    ++f.running;
    asio::co_spawn(f.executor, fetch(f, id, Clock::now()), asio::detached);
  }
  for (; id < e.p.n; ++id) f.tally.end(id, Ending::cancelled);  // never started
  // Ends when the last request cancels it; one that ended already, while this
  // coroutine waited for a slot, found no wait to cancel.
  if (f.running > 0) co_await f.all_ended.async_wait(asio::as_tuple(asio::use_awaitable));
  if (f.fatal) std::rethrow_exception(f.fatal);
  co_return f.tally.outcome();
}

}  // namespace

Outcome run_event_loop(EventLoop& loop, const Target& target, const Expected& e, Measurements& m) {
  return loop.run(fan_out(loop.context(), target, e, m));
}

}  // namespace concbench::fan_out
