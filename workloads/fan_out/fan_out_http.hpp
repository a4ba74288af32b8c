#pragma once
// The HTTP side of the fan_out client, written once for every model: the request
// a given id sends, the parser its answer is read with, and, for the models that
// block (serial, thread_pool), a keep-alive connection whose every wait ends at a
// deadline and which another thread can abort.
//
// A request costs the client what it costs wrk, as far as that goes: its text and
// its response body live in buffers that the connection reuses, so a warm
// connection allocates nothing per request (Beast's request<> and
// response_parser<> would build header fields and strings anew for each one).
#include "workloads/fan_out/deadline.hpp"
#include "workloads/fan_out/fan_out.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/read.hpp>

#include <sys/uio.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace concbench::fan_out {

asio::ip::tcp::endpoint endpoint_of(const Target& target);  // throws on a malformed address
// The error for a server that refused, reset or never accepted a connection.
std::runtime_error unreachable(const asio::ip::tcp::endpoint& server, const boost::system::error_code& error);

// The bytes of GET work_target(...id...) HTTP/1.1 with its Host header, as Beast
// would serialize them. All but the id is the same for every request of a run, so
// it is formatted once; each request writes its id between the two.
class RequestText {
 public:
  RequestText(const Params& p, const asio::ip::tcp::endpoint& server);
  // Valid until the next call.
  std::string_view operator()(std::uint64_t id);

 private:
  std::string text_;  // "GET /work?...&id=", then the id and the tail
  std::size_t head_size_;
  std::string tail_;  // " HTTP/1.1\r\nHost: ...\r\n\r\n"
};

// Reads one response: its status, its body (into a string the connection keeps,
// so its capacity is reused) and whether the server keeps the connection; the
// header fields are parsed (and checked) by Beast but not stored, the checks need
// none of them. One reader per response, as for any Beast parser.
class ResponseReader : public boost::beast::http::basic_parser<false> {
 public:
  // A body larger than the request asked for is an error, not a reason to buffer it.
  ResponseReader(const Params& p, std::string& body);
  unsigned status() const { return status_; }
  std::string_view body() const { return body_; }

 private:
  using string_view = boost::beast::string_view;
  using error_code = boost::system::error_code;
  void on_request_impl(boost::beast::http::verb, string_view, string_view, int, error_code&) override {}
  void on_response_impl(int code, string_view, int, error_code&) override { status_ = static_cast<unsigned>(code); }
  void on_field_impl(boost::beast::http::field, string_view, string_view, error_code&) override {}
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override {
    if (length) body_.reserve(*length);  // within the body limit: the parser checked it
  }
  std::size_t on_body_impl(string_view s, error_code&) override {
    body_.append(s.data(), s.size());
    return s.size();
  }
  void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, string_view s, error_code& ec) override { return on_body_impl(s, ec); }
  void on_finish_impl(error_code&) override {}

  std::string& body_;
  unsigned status_ = 0;
};

// One keep-alive connection of the asynchronous models (event_loop, fibers): its
// socket, bound to the io_context that runs its operations (by its concrete
// executor type: no type-erased executor copied in every operation), the timeout
// of the request on it (closing the socket on expiry), and its buffers. Used and
// destroyed on that io_context's thread only.
struct AsyncConnection {
  using Executor = asio::io_context::executor_type;
  using Socket = asio::basic_stream_socket<asio::ip::tcp, Executor>;

  AsyncConnection(const Executor& executor, const Params& p, const asio::ip::tcp::endpoint& server)
      : socket(executor), deadline(socket), request(p, server) {}
  AsyncConnection(const AsyncConnection&) = delete;  // the deadline refers to the socket
  AsyncConnection& operator=(const AsyncConnection&) = delete;

  // Sends request `id` on the connected socket and reads its answer into
  // `response`; completes with an error_code. The request is written at once, the
  // loop waits until the answer arrives, and it is read and parsed at once then:
  // one trip round the event loop per request, as in wrk. async_write followed by
  // http::async_read would take three, and try a read that fails with EAGAIN
  // before waiting. The deadline ends it by closing the socket.
  template <class Token>
  auto async_exchange(std::uint64_t id, ResponseReader& response, Token&& token) {
    return asio::async_compose<Token, void(boost::system::error_code)>(ExchangeOp{*this, response, request(id)},
                                                                       token, socket);
  }

  // Ends the request on it and closes the socket; the next request reconnects.
  void disconnect() {
    deadline.stop();
    boost::system::error_code ignored;
    socket.close(ignored);
  }

  Socket socket;
  Deadline<Socket> deadline;
  boost::beast::flat_buffer buffer;
  RequestText request;
  std::string body;   // of the latest response
  bool busy = false;  // a request is on it

 private:
  struct ExchangeOp {
    AsyncConnection& c;
    ResponseReader& response;
    std::string_view text;  // of the request
    enum class Step { send, sending, receiving } step = Step::send;

    template <class Self>
    void operator()(Self& self, boost::system::error_code ec = {}, std::size_t = 0) {
      namespace http = boost::beast::http;
      switch (step) {
        case Step::send: {
          step = Step::sending;
          // Non-blocking: a write or read that would wait says so instead.
          if (!c.socket.non_blocking()) c.socket.non_blocking(true, ec);
          std::size_t sent = 0;
          if (!ec) sent = c.socket.write_some(asio::buffer(text), ec);
          if (ec == asio::error::would_block) ec = {};
          if (ec) return asio::post(c.socket.get_executor(), asio::append(std::move(self), ec, 0));  // never inline
          if (sent < text.size()) return asio::async_write(c.socket, asio::buffer(text.substr(sent)), std::move(self));
          [[fallthrough]];
        }
        case Step::sending:
          if (ec) return self.complete(ec);
          step = Step::receiving;
          // Bytes read with the last answer (a server that sent more than it was
          // asked) are parsed first: the socket will not say they are there.
          if (c.buffer.size() > 0) return asio::post(c.socket.get_executor(), asio::append(std::move(self), ec, 0));
          return c.socket.async_wait(Socket::wait_read, std::move(self));
        case Step::receiving:
          if (ec) return self.complete(ec);
          http::read(c.socket, c.buffer, response, ec);  // resumes where the last call stopped
          if (ec == asio::error::would_block) return c.socket.async_wait(Socket::wait_read, std::move(self));
          return self.complete(ec);
      }
    }
  };
};

// One keep-alive connection on a non-blocking socket driven by poll(): every wait
// ends at the request's deadline (Asio's blocking calls wait in poll() without a
// timeout), and another thread can abort it.
class BlockingConnection {
 public:
  using Clock = std::chrono::steady_clock;

  BlockingConnection(const Params& p, const asio::ip::tcp::endpoint& server) : server_(server), request_(p, server) {}
  ~BlockingConnection() { close(); }
  BlockingConnection(const BlockingConnection&) = delete;
  BlockingConnection& operator=(const BlockingConnection&) = delete;

  // Sends request `id` (connecting first if needed), reads its answer and records
  // how it ended: ok or failed, timed_out past `deadline`, cancelled after abort().
  // The connection is closed after a timeout or an abort. An unreachable server or
  // a wrong answer throws.
  Ending fetch(Tally& tally, const Expected& e, std::uint64_t id, Clock::time_point deadline);

  // From any thread: a fetch in progress, and every later one, ends as cancelled
  // (shutting the socket down wakes the blocked wait).
  void abort();

  // What Beast reads and writes through (SyncReadStream, SyncWriteStream). A write
  // sends the whole sequence in one sendmsg: a request is a handful of pieces.
  template <class Buffers>
  std::size_t read_some(const Buffers& buffers, boost::system::error_code& ec) {
    return transfer(to_iovecs(buffers), true, ec);
  }
  template <class Buffers>
  std::size_t write_some(const Buffers& buffers, boost::system::error_code& ec) {
    return transfer(to_iovecs(buffers), false, ec);
  }
  template <class Buffers>
  std::size_t read_some(const Buffers& buffers) {
    return throwing([&](auto& ec) { return read_some(buffers, ec); });
  }
  template <class Buffers>
  std::size_t write_some(const Buffers& buffers) {
    return throwing([&](auto& ec) { return write_some(buffers, ec); });
  }

 private:
  using Iovecs = std::vector<iovec>;
  template <class Buffers>
  Iovecs& to_iovecs(const Buffers& buffers) {
    iovecs_.clear();
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
      const auto b = asio::buffer(*it);
      if (b.size() > 0) iovecs_.push_back({const_cast<void*>(static_cast<const void*>(b.data())), b.size()});
    }
    return iovecs_;
  }
  template <class F>
  static std::size_t throwing(F f) {
    boost::system::error_code ec;
    const std::size_t n = f(ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }
  std::size_t transfer(Iovecs& buffers, bool reading, boost::system::error_code& ec);
  bool wait(short events, boost::system::error_code& ec);  // false: the deadline passed
  void connect(boost::system::error_code& ec);
  void close();

  asio::ip::tcp::endpoint server_;
  int fd_ = -1;
  std::mutex fd_mutex_;  // abort() must not shut down a descriptor number close() freed
  std::atomic<bool> aborted_{false};
  Clock::time_point deadline_;
  boost::beast::flat_buffer buffer_;
  RequestText request_;
  std::string body_;
  Iovecs iovecs_;
};

// What the blocking models (serial, thread_pool) share: how a request ends, fail-fast
// across threads, and the latency samples. Any thread may call fetch().
class BlockingRun {
 public:
  BlockingRun(const Target& target, const Expected& e, Measurements& m);

  // A connection that stop() can abort; the caller keeps it for its requests.
  BlockingConnection& connection();
  // Runs request id on `c` and records how it ended; ends it as cancelled at once
  // once the group stopped.
  void fetch(BlockingConnection& c, std::uint64_t id);
  bool stopped() const { return stopping_.load(std::memory_order_acquire); }
  // After every thread ended: the outcome, or the first fatal error rethrown.
  Outcome finish();

 private:
  void stop(std::exception_ptr fatal);  // aborts every connection

  const Expected& e_;
  Measurements& m_;
  asio::ip::tcp::endpoint server_;
  Tally tally_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;  // guards what follows
  std::vector<std::unique_ptr<BlockingConnection>> connections_;
  std::exception_ptr fatal_;
  std::chrono::steady_clock::time_point first_failure_;
  std::uint64_t in_flight_ = 0;
};

}  // namespace concbench::fan_out
