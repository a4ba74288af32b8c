// fibers and fibers_mt: one fiber per request, all N started at once, each taking
// one of K permits itself (goroutines that acquire the semaphore inside; asyncio's
// gather of N tasks around a Semaphore). The event_loop's launcher instead starts a
// request once it holds a slot; tried here, that put a fiber's creation and a trip
// through the pool's channel on each request's path, and the 10 ms cell rose from
// 1.10 to 1.12 times the ideal on the 2-core VM. Code reads as blocking calls: a
// connect, then each request's exchange (AsyncConnection::async_exchange), on the
// pool thread's own io_context; fiber_await suspends only the fiber that waits (the
// thread runs the other fibers and the reactor). The timeout is the connection's
// deadline (deadline.hpp), on the socket's thread; fail-fast cancels each
// connection in use on that thread.
#include "workloads/fan_out/fan_out.hpp"

#include "models/fiber_io.hpp"
#include "workloads/fan_out/fan_out_http.hpp"

#include <boost/fiber/condition_variable.hpp>
#include <boost/fiber/mutex.hpp>

#include <memory>
#include <mutex>

namespace concbench::fan_out {

namespace {

using Clock = std::chrono::steady_clock;
using boost::system::error_code;

using Connection = AsyncConnection;

struct FiberFanOut {
  FiberFanOut(const Target& target, const Expected& e, Measurements& m)
      : e(e), m(m), endpoint(endpoint_of(target)), free_permits(e.p.k) {}

  const Expected& e;
  Measurements& m;
  asio::ip::tcp::endpoint endpoint;
  Tally tally;
  std::atomic<bool> stopping{false};  // group:all after a failure, or a fatal error

  // Guards what follows; fibers of several threads share it (fibers_mt).
  boost::fibers::mutex mutex;
  // Two conditions, so that a freed permit wakes one waiter, not all N of them.
  boost::fibers::condition_variable permit_freed;  // or the group stopped
  boost::fibers::condition_variable all_ended;
  std::uint64_t free_permits;
  std::uint64_t running = 0;
  std::vector<std::shared_ptr<Connection>> all;   // every connection, closed on its thread at the end
  std::vector<std::shared_ptr<Connection>> idle;  // keep-alive connections not in use
  std::exception_ptr fatal;
  Clock::time_point first_failure;

  // Runs on the socket's thread (Asio I/O objects are not thread-safe). Once the
  // group stopped, an operation completes at once as aborted (a cancel posted
  // before it started would have missed it), and stops the deadline there as any
  // completion does, so that expired() no longer changes once the fiber reads it.
  template <class... Args, class Start>
  std::tuple<error_code, Args...> await(Connection& c, Start start) {
    return fiber_await<error_code, Args...>(c.socket.get_executor(), [this, &c, start](auto handler) mutable {
      if (stopping) {
        c.deadline.stop();
        return handler(asio::error::operation_aborted, Args{}...);
      }
      start(std::move(handler));
    });
  }

  void stop(std::exception_ptr error) {
    std::unique_lock lock(mutex);
    if (error && !fatal) fatal = error;
    if (stopping.exchange(true)) return;
    first_failure = Clock::now();
    for (const auto& c : all)
      if (c->busy)
        asio::post(c->socket.get_executor(), [c] {  // keeps c alive until it ran
          error_code ignored;
          c->socket.cancel(ignored);
        });
    permit_freed.notify_all();
  }
};

// Request id on connection c: the ending, or nullopt if the group stopped it.
std::optional<Ending> exchange(FiberFanOut& f, Connection& c, std::uint64_t id) {
  auto failed = [&](const error_code& ec) -> std::optional<Ending> {
    if (c.deadline.expired()) return Ending::timed_out;  // set on the socket's thread before the completion
    if (ec == asio::error::operation_aborted) return std::nullopt;
    throw unreachable(f.endpoint, ec);
  };
  // The deadline stops on the socket's thread when a connect fails and when an
  // exchange ends, so that expired() no longer changes once this fiber reads it.
  auto stopping_the_deadline = [&c](auto handler, bool always) {
    return [&c, always, handler = std::move(handler)](const error_code& ec) mutable {
      if (ec || always) c.deadline.stop();
      handler(ec);
    };
  };
  // The request's clock starts here, just before its first operation.
  const auto deadline = Clock::now() + f.e.p.timeout;
  const bool connect = !c.socket.is_open();  // an idle connection's deadline never closes it
  if (connect) {
    auto [ec] = f.await(c, [&](auto handler) {
      c.deadline.start(deadline);
      c.buffer.clear();
      c.socket.async_connect(f.endpoint, stopping_the_deadline(std::move(handler), false));
    });
    if (ec) return failed(ec);
  }
  ResponseReader response(f.e.p, c.body);
  auto [error] = f.await(c, [&](auto handler) {
    if (!connect) c.deadline.start(deadline);
    c.async_exchange(id, response, stopping_the_deadline(std::move(handler), true));
  });
  if (error) return failed(error);
  const Ending ending = record_response(f.tally, f.e, id, response.status(), response.body());
  if (!response.keep_alive()) f.await(c, [&](auto handler) { c.disconnect(), handler(error_code{}); });
  return ending;
}

void fetch(FiberFanOut& f, std::uint64_t id) {
  std::optional<Ending> ending;
  std::shared_ptr<Connection> c;
  {
    std::unique_lock lock(f.mutex);
    f.permit_freed.wait(lock, [&] { return f.free_permits > 0 || f.stopping; });
    if (!f.stopping) {
      --f.free_permits;
      if (f.idle.empty()) {
        c = f.all.emplace_back(  // on this thread's io_context
            std::make_shared<Connection>(FiberPool::thread_context().get_executor(), f.e.p, f.endpoint));
      } else {
        c = std::move(f.idle.back());
        f.idle.pop_back();
      }
      c->busy = true;
    }
  }
  if (c) {
    const auto start = Clock::now();
    try {
      ending = exchange(f, *c, id);
    } catch (...) {
      f.stop(std::current_exception());
    }
    const auto end = Clock::now();
    std::unique_lock lock(f.mutex);
    ++f.free_permits;
    f.permit_freed.notify_one();
    c->busy = false;
    const bool answered = ending == Ending::ok || ending == Ending::failed;
    if (answered && c->socket.is_open()) f.idle.push_back(std::move(c));
    c.reset();  // under the lock: the last reference goes on the connection's own thread, at the end
    if (ending) f.m.latency.record(end - start);
  }
  if (ending == Ending::timed_out) f.tally.end(id, Ending::timed_out);
  if (!ending) f.tally.end(id, Ending::cancelled);
  if (f.e.p.group == Group::all && ending && *ending != Ending::ok) f.stop(nullptr);
  std::unique_lock lock(f.mutex);
  if (--f.running > 0) return;
  if (f.stopping) f.m.cancel = Clock::now() - f.first_failure;
  f.all_ended.notify_all();
}

}  // namespace

Outcome run_fibers(FiberPool& pool, const Target& target, const Expected& e, Measurements& m) {
  FiberFanOut f(target, e, m);
  f.running = e.p.n;
  pool.run([&] {
    // Through the pool's channel, so that an idle thread of fibers_mt takes some.
    for (std::uint64_t id = 0; id < e.p.n; ++id) pool.post([&f, id] { fetch(f, id); });
    {
      std::unique_lock lock(f.mutex);
      f.all_ended.wait(lock, [&] { return f.running == 0; });
      f.idle.clear();
    }
    // Each connection is closed and freed on the thread whose io_context owns it,
    // after any cancel still queued there.
    for (auto& c : f.all) {
      const auto executor = c->socket.get_executor();
      fiber_await<>(executor, [c = std::move(c)](auto done) mutable {
        c.reset();
        done();
      });
    }
  });
  if (f.fatal) std::rethrow_exception(f.fatal);
  return f.tally.outcome();
}

}  // namespace concbench::fan_out
