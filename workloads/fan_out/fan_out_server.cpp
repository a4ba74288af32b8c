#include "workloads/fan_out/fan_out_server.hpp"

#include "workloads/fan_out/deadline.hpp"
#include "workloads/fan_out/fan_out.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>

#include <algorithm>
#include <atomic>
#include <tuple>
#include <charconv>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace concbench::fan_out {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Request = http::request<http::empty_body>;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::uint32_t kHeaderLimit = 8 * 1024;
constexpr std::uint64_t kBodyLimit = 1024;  // moot with empty_body (any body is an error), but kept small
// A body is written in pieces of at most this many bytes (a multiple of 8), so that a
// connection holds no more than that however large its body and however slowly its
// peer reads: ten peers that never read a 64 MiB body held 660 MB when bodies were
// rendered whole.
constexpr std::size_t kBodyPiece = 64 * 1024;

// A response's head and the first `body_bytes` of its body, written into `out`
// (whose capacity each connection reuses): the status line and two or three fields
// are all there is to say. Beast's serializer walks a chain of buffer views on every
// write, which took an eighth of the server's time per request. Returns the body's
// bytes in `out`, to be filled.
std::span<char> render(std::string& out, http::status status, unsigned version, bool keep_alive,
                       std::string_view content_type, std::size_t body_size, std::size_t body_bytes) {
  const auto code = static_cast<unsigned>(status);
  char numbers[48];
  const auto code_end = std::to_chars(numbers, numbers + 3, code).ptr;
  const auto length_end = std::to_chars(code_end, numbers + sizeof numbers, body_size).ptr;
  out.assign(version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ").append(numbers, code_end).append(" ");
  out.append(http::obsolete_reason(status)).append("\r\nContent-Type: ").append(content_type);
  out.append("\r\nContent-Length: ").append(code_end, length_end);
  // HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 closes it unless told.
  if (version == 10 && keep_alive) out.append("\r\nConnection: keep-alive");
  if (version != 10 && !keep_alive) out.append("\r\nConnection: close");
  out.append("\r\n\r\n");
  const std::size_t head = out.size();
  out.resize(head + body_bytes);
  return {out.data() + head, body_bytes};
}

void render_text(std::string& out, http::status status, unsigned version, bool keep_alive, std::string_view text) {
  const auto body = render(out, status, version, keep_alive, "text/plain", text.size() + 1, text.size() + 1);
  std::copy(text.begin(), text.end(), body.begin());
  body.back() = '\n';
}

// Each connection's coroutines, socket and timers run on a concrete executor type:
// the io_context's own with one thread, a strand of it with several (so that a
// connection's socket, deadline and delay timer are used by one thread at a
// time). Asio's default, the type-erased any_io_executor, holds a strand on the
// heap and copies it, reference count and all, in every operation: that was a
// quarter of the server's time per request.
using Plain = asio::io_context::executor_type;
using Strand = asio::strand<Plain>;

// What is left of a body after `out`'s first piece: the request's id and its bytes.
struct Rest {
  std::uint64_t id = 0, from = 0, to = 0;
};

// Renders the answer to a well-formed request into `out`, after its delay: the whole
// of it, or its head and first piece, with the rest of the body to write after.
template <class Executor>
asio::awaitable<Rest, Executor> answer(const Request& req, std::string& out) {
  const bool keep_alive = req.keep_alive();
  if (req.method() != http::verb::get) {
    render_text(out, http::status::bad_request, req.version(), keep_alive, "only GET is served");
    co_return Rest{};
  }
  const auto q = parse_work_target(std::string_view(req.target()));
  if (!q) {
    render_text(out, http::status::bad_request, req.version(), keep_alive,
                "expected /work?delay_us=D&bytes=B&fail=P&id=I, each key at most once and in range");
    co_return Rest{};
  }
  if (q->delay_us > 0) {
    // A timer, so that the requests that wait share the thread with those that run.
    auto executor = co_await asio::this_coro::executor;
    typename asio::steady_timer::rebind_executor<Executor>::other delay(executor, std::chrono::microseconds(q->delay_us));
    co_await delay.async_wait(asio::use_awaitable_t<Executor>());
  }
  if (draws_failure(q->id, q->fail)) {
    render_text(out, http::status::internal_server_error, req.version(), keep_alive,
                "request " + std::to_string(q->id) + " drew a failure");
    co_return Rest{};
  }
  const std::size_t first = std::min<std::uint64_t>(q->bytes, kBodyPiece);
  fill_body(q->id, render(out, http::status::ok, req.version(), keep_alive, "application/octet-stream", q->bytes, first));
  co_return Rest{q->id, first, q->bytes};
}

// A parse error of the request itself, as opposed to a peer that left or went quiet.
bool is_malformed(const beast::error_code& ec) {
  static const auto& http_errors = make_error_code(http::error::bad_target).category();
  return ec.category() == http_errors && ec != http::error::end_of_stream && ec != http::error::partial_message;
}

// Counts a connection from its session's start to its end, whichever way it ends.
struct Counted {
  std::atomic<std::size_t>& count;
  explicit Counted(std::atomic<std::size_t>& c) : count(c) { ++count; }
  ~Counted() { --count; }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;
};

template <class Executor>
asio::awaitable<void, Executor> session(asio::basic_stream_socket<tcp, Executor> socket,
                                        std::chrono::milliseconds idle_timeout, std::atomic<std::size_t>& connections) {
  const Counted counted(connections);
  constexpr auto use_awaitable = asio::as_tuple(asio::use_awaitable_t<Executor>());
  // Bounds the wait for the next request and each part of it: an idle keep-alive
  // connection and a half-sent request are closed alike. One timer per connection
  // (deadline.hpp), where Beast's stream arms and cancels one around every read and write.
  Deadline<decltype(socket)> deadline(socket);
  beast::flat_buffer buffer;
  std::string response;
  for (;;) {
    http::request_parser<http::empty_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(kBodyLimit);
    deadline.start(Clock::now() + idle_timeout);
    const auto [read_error, read_bytes] = co_await http::async_read(socket, buffer, parser, use_awaitable);
    deadline.stop();
    if (read_error) {
      // What follows unparsable bytes cannot be framed: answer if the peer listens, then close.
      if (is_malformed(read_error)) {
        render_text(response,
                    read_error == http::error::header_limit ? http::status::request_header_fields_too_large
                                                            : http::status::bad_request,
                    11, false, "malformed request: " + read_error.message());
        deadline.start(Clock::now() + idle_timeout);
        co_await asio::async_write(socket, asio::buffer(response), use_awaitable);
      }
      break;
    }
    const Request& req = parser.get();
    Rest rest = co_await answer<Executor>(req, response);
    // A peer that does not take the response is as gone as an idle one; a large body
    // gets a microsecond a byte on top (1 MB/s, far below loopback's speed).
    deadline.start(Clock::now() + idle_timeout + std::chrono::microseconds(response.size() + rest.to - rest.from));
    auto [write_error, written] = co_await asio::async_write(socket, asio::buffer(response), use_awaitable);
    while (!write_error && rest.from < rest.to) {
      response.resize(std::min<std::uint64_t>(rest.to - rest.from, kBodyPiece));
      fill_body(rest.id, response, rest.from);
      rest.from += response.size();
      std::tie(write_error, written) = co_await asio::async_write(socket, asio::buffer(response), use_awaitable);
    }
    deadline.stop();
    if (write_error || !req.keep_alive()) break;
  }
  beast::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
}

template <class Executor>
Executor connection_executor(asio::io_context& context) {
  if constexpr (std::is_same_v<Executor, Strand>)
    return asio::make_strand(context.get_executor());
  else
    return context.get_executor();
}

template <class Executor>
asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, asio::io_context& context,
                                  std::chrono::milliseconds idle_timeout, std::size_t max_connections,
                                  std::atomic<std::size_t>& connections) {
  for (;;) {
    asio::basic_stream_socket<tcp, Executor> socket(connection_executor<Executor>(context));
    const auto [ec] = co_await acceptor.async_accept(socket, asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Out of descriptors and the like: pause instead of spinning, then go on.
      asio::steady_timer pause(acceptor.get_executor(), 50ms);
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (connections.load() >= max_connections) {
      beast::error_code ignored;
      socket.close(ignored);  // refused: past the cap, the peer sees its connection closed
      continue;
    }
    auto executor = socket.get_executor();
    // Detached: a session that throws loses only its own connection, whose socket its
    // frame closes.
    asio::co_spawn(executor, session<Executor>(std::move(socket), idle_timeout, connections), asio::detached);
  }
}

}  // namespace

Server::Server(const ServerOptions& options)
    : options_(options),
      context_(std::make_unique<asio::io_context>(static_cast<int>(options.threads))),
      acceptor_(std::make_unique<tcp::acceptor>(*context_)) {
  const std::string where = options.bind + ":" + std::to_string(options.port);
  if (options.threads == 0) throw std::runtime_error("cannot serve on " + where + " with 0 threads");
  reserve_descriptors();
  auto check = [&](const boost::system::error_code& ec) {
    if (ec) throw std::runtime_error("cannot listen on " + where + ": " + ec.message());
  };
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(options.bind, ec);
  check(ec);
  const tcp::endpoint endpoint(address, options.port);
  acceptor_->open(endpoint.protocol(), ec);
  check(ec);
  // Restarting on a port whose old connections linger in TIME_WAIT; a port that
  // someone listens on still fails.
  acceptor_->set_option(tcp::acceptor::reuse_address(true), ec);
  check(ec);
  acceptor_->bind(endpoint, ec);
  check(ec);
  acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  check(ec);
  port_ = acceptor_->local_endpoint().port();
  if (options.threads == 1)
    asio::co_spawn(*context_,
                   accept_loop<Plain>(*acceptor_, *context_, options_.idle_timeout, options_.max_connections, connections_),
                   asio::detached);
  else
    asio::co_spawn(*context_,
                   accept_loop<Strand>(*acceptor_, *context_, options_.idle_timeout, options_.max_connections, connections_),
                   asio::detached);
}

Server::~Server() = default;

void Server::run() {
  asio::io_context* context;
  {
    std::lock_guard lock(mutex_);
    context = context_.get();
  }
  if (!context) throw std::logic_error("fan_out::Server::run() called twice");
  {
    std::vector<std::jthread> helpers;
    for (unsigned i = 1; i < options_.threads; ++i) helpers.emplace_back([context] { context->run(); });
    context->run();
  }  // joins the helpers
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<asio::io_context> owned;
  {
    std::lock_guard lock(mutex_);
    acceptor = std::move(acceptor_);
    owned = std::move(context_);
  }
  acceptor.reset();
  owned.reset();  // destroys the suspended sessions: their connections close
}

void Server::stop() {
  std::lock_guard lock(mutex_);
  if (context_) context_->stop();
}

}  // namespace concbench::fan_out
