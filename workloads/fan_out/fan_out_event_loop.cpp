// event_loop: one coroutine per request on the loop's one thread, as with asyncio
// (gather of N tasks and a Semaphore(K)). The cap is a buffered channel of K slots
// (Go's semaphore idiom on Asio's channel). The timeout is the stream's deadline: a
// timer that Beast races against each operation, cancelling it on expiry. Fail-fast
// cancels every sibling waiting for a slot through its cancellation slot, and every
// connection in use directly.
#include "workloads/fan_out/fan_out.hpp"

#include "workloads/fan_out/fan_out_http.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <memory>
#include <set>

namespace concbench::fan_out {

namespace {

using Clock = std::chrono::steady_clock;
using boost::system::error_code;
namespace beast = boost::beast;
namespace http = beast::http;

using Connection = AsyncConnection;

struct FanOut {
  FanOut(asio::any_io_executor executor, const Target& target, const Expected& e, Measurements& m)
      : e(e), m(m), endpoint(endpoint_of(target)), permits(executor, e.p.k), cancel(e.p.n), all_ended(executor) {}

  const Expected& e;
  Measurements& m;
  asio::ip::tcp::endpoint endpoint;
  Tally tally;
  asio::experimental::channel<void(error_code)> permits;  // one buffered message per request in flight
  std::vector<std::unique_ptr<Connection>> idle;          // keep-alive connections not in use
  std::set<Connection*> busy;                             // connections with a request on them
  std::vector<asio::cancellation_signal> cancel;          // by id: stops that request
  std::vector<bool> ended;
  std::uint64_t running = 0;
  asio::steady_timer all_ended;  // cancelled by the last request to end
  bool stopping = false;         // group:all after a failure, or a fatal error
  Clock::time_point first_failure;
  std::exception_ptr fatal;  // the server unreachable or a wrong answer: the run fails

  // After the first failure (group:all) or a fatal error, every other request stops.
  void stop_all(std::uint64_t except) {
    if (stopping) return;
    stopping = true;
    first_failure = Clock::now();
    for (std::uint64_t id = 0; id < cancel.size(); ++id)
      if (id != except && !ended[id]) cancel[id].emit(asio::cancellation_type::terminal);
    for (Connection* c : busy) c->stream.cancel();
  }
};

// Sends request `id` on `c` and reads its answer, all within the timeout.
asio::awaitable<Ending> exchange(FanOut& f, Connection& c, std::uint64_t id) {
  c.stream.expires_after(f.e.p.timeout);
  if (!c.stream.socket().is_open()) co_await c.stream.async_connect(f.endpoint, asio::use_awaitable);
  const auto request = make_request(f.e.p, id, f.endpoint);
  co_await http::async_write(c.stream, request, asio::use_awaitable);
  Parser parser;
  limit_body(parser, f.e.p);
  co_await http::async_read(c.stream, c.buffer, parser, asio::use_awaitable);
  c.stream.expires_never();
  const auto& response = parser.get();
  const Ending ending = record_response(f.tally, f.e, id, response.result_int(), response.body());
  if (!response.keep_alive()) c.stream.close();
  co_return ending;
}

asio::awaitable<void> fetch(FanOut& f, std::uint64_t id) {
  const auto executor = co_await asio::this_coro::executor;
  std::optional<Ending> ending;  // none: it never got its answer
  try {
    co_await f.permits.async_send(error_code{}, asio::use_awaitable);  // waits while K are in flight
    struct Release {
      FanOut& f;
      ~Release() { f.permits.try_receive([](error_code) {}); }
    } release{f};
    if (!f.stopping) {
      const auto start = Clock::now();
      std::unique_ptr<Connection> c;
      if (f.idle.empty()) {
        c = std::make_unique<Connection>(executor);
      } else {
        c = std::move(f.idle.back());
        f.idle.pop_back();
      }
      f.busy.insert(c.get());
      struct Unbusy {
        FanOut& f;
        Connection* c;
        ~Unbusy() { f.busy.erase(c); }
      } unbusy{f, c.get()};
      try {
        ending = co_await exchange(f, *c, id);
        if (c->stream.socket().is_open()) f.idle.push_back(std::move(c));
      } catch (const boost::system::system_error& error) {
        if (error.code() != beast::error::timeout) throw;
        f.tally.end(id, Ending::timed_out);  // Beast closed the connection
        ending = Ending::timed_out;
      }
      f.m.latency.record(Clock::now() - start);
    }
  } catch (const boost::system::system_error& error) {
    // Cancelled by a failing sibling, or an I/O error that no request should meet
    // on loopback (refused, reset): that one fails the run.
    const bool cancelled = error.code() == asio::error::operation_aborted ||
                           error.code() == asio::experimental::error::channel_cancelled;
    if (!cancelled && !f.fatal) f.fatal = std::make_exception_ptr(unreachable(f.endpoint, error.code()));
  } catch (...) {
    if (!f.fatal) f.fatal = std::current_exception();
  }
  if (!ending) f.tally.end(id, Ending::cancelled);
  if (f.fatal || (f.e.p.group == Group::all && ending && *ending != Ending::ok)) f.stop_all(id);
  f.ended[id] = true;
  if (--f.running == 0) {
    if (f.stopping) f.m.cancel = Clock::now() - f.first_failure;
    f.all_ended.cancel();
  }
}

asio::awaitable<Outcome> fan_out(const Target& target, const Expected& e, Measurements& m) {
  const auto executor = co_await asio::this_coro::executor;
  FanOut f(executor, target, e, m);
  f.ended.assign(e.p.n, false);
  f.running = e.p.n;
  f.all_ended.expires_at(Clock::time_point::max());
  for (std::uint64_t id = 0; id < e.p.n; ++id)
    asio::co_spawn(executor, fetch(f, id), asio::bind_cancellation_slot(f.cancel[id].slot(), asio::detached));
  if (e.p.n > 0) co_await f.all_ended.async_wait(asio::as_tuple(asio::use_awaitable));  // ends when cancelled
  if (f.fatal) std::rethrow_exception(f.fatal);
  co_return f.tally.outcome();
}

}  // namespace

Outcome run_event_loop(EventLoop& loop, const Target& target, const Expected& e, Measurements& m) {
  return loop.run(fan_out(target, e, m));
}

}  // namespace concbench::fan_out
