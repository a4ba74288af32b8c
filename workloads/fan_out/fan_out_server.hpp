#pragma once
// The fan_out workload's HTTP server. It stands in for a remote service: this
// machine has no `tc netem`, so the network's delay is injected here instead, each
// request waiting its `delay_us` on a timer (never a sleep, so one thread holds any
// number of waiting requests, as a real network does). Its answers follow the
// contract in fan_out.hpp and are deterministic, so the client checks every byte
// of every body and knows in advance which ids fail with HTTP 500.
//
// HTTP/1.1 with keep-alive on Boost.Beast, one coroutine per connection. Bad input
// gets 400 and, where the bytes cannot be trusted any more, a closed connection;
// a connection idle or half-sent for `idle_timeout` is closed too.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace concbench::fan_out {

struct ServerOptions {
  std::string bind = "127.0.0.1";
  std::uint16_t port = 0;  // 0: an ephemeral port
  unsigned threads = 1;    // threads running the server's io_context
  std::chrono::milliseconds idle_timeout{5000};  // idle keep-alive or half-sent request: closed after this
  // Connections served at once; one past it is closed as soon as accepted. With bodies
  // written a 64 KiB piece at a time, this bounds the server's memory for responses.
  std::size_t max_connections = 4096;
};

class Server {
 public:
  // Binds and listens now; throws std::runtime_error naming the address on failure.
  explicit Server(const ServerOptions& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  std::uint16_t port() const { return port_; }
  // Serves on `threads` threads (the calling thread is one of them) until stop(),
  // then closes every open connection and returns. Once per server.
  void run();
  // From any thread, before or during run().
  void stop();

 private:
  ServerOptions options_;
  std::uint16_t port_ = 0;
  std::mutex mutex_;  // stop() against run() tearing the context down
  std::atomic<std::size_t> connections_{0};
  // Destroyed at the end of run(): that destroys every suspended session and so
  // closes its connection. The acceptor goes first; it belongs to the context.
  std::unique_ptr<boost::asio::io_context> context_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
};

}  // namespace concbench::fan_out
