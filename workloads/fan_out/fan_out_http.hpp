#pragma once
// The HTTP side of the fan_out client, written once for every model: the request
// a given id sends, the parser its answer is read with, and, for the models that
// block (serial, thread_pool), a keep-alive connection whose every wait ends at a
// deadline and which another thread can abort.
#include "workloads/fan_out/fan_out.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <sys/uio.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace concbench::fan_out {

using Request = boost::beast::http::request<boost::beast::http::empty_body>;
using Parser = boost::beast::http::response_parser<boost::beast::http::string_body>;

asio::ip::tcp::endpoint endpoint_of(const Target& target);  // throws on a malformed address
Request make_request(const Params& p, std::uint64_t id, const asio::ip::tcp::endpoint& server);
// A body larger than the request asked for is an error, not a reason to buffer it.
void limit_body(Parser& parser, const Params& p);
// The error for a server that refused, reset or never accepted a connection.
std::runtime_error unreachable(const asio::ip::tcp::endpoint& server, const boost::system::error_code& error);

// One keep-alive connection of the asynchronous models (event_loop, fibers): its
// stream, bound to the io_context that runs its operations, and its read buffer.
struct AsyncConnection {
  explicit AsyncConnection(const asio::any_io_executor& executor) : stream(executor) {}
  boost::beast::tcp_stream stream;
  boost::beast::flat_buffer buffer;
};

// One keep-alive connection on a non-blocking socket driven by poll(): every wait
// ends at the request's deadline (Asio's blocking calls wait in poll() without a
// timeout), and another thread can abort it.
class BlockingConnection {
 public:
  using Clock = std::chrono::steady_clock;

  explicit BlockingConnection(const asio::ip::tcp::endpoint& server) : server_(server) {}
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
