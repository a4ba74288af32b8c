#include "workloads/fan_out/fan_out_server.hpp"

#include "workloads/fan_out/fan_out.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace concbench::fan_out {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using Response = http::response<http::string_body>;

// Every client call gives up after this, so that a server that hangs fails the
// test instead of hanging it.
constexpr auto kClientTimeout = 10s;

// A blocking client. Its calls run asynchronous operations on a loop of its own
// to completion, which is what gives each one a timeout.
class Client {
 public:
  explicit Client(std::uint16_t port) : stream_(context_) {
    const tcp::endpoint server(asio::ip::make_address("127.0.0.1"), port);
    const auto ec = wait([&](auto done) { stream_.async_connect(server, [done](auto ec) { done(ec, 0); }); });
    if (ec) throw std::runtime_error("connect: " + ec.message());
  }

  beast::error_code send(std::string_view bytes) {
    return wait([&](auto done) { asio::async_write(stream_, asio::buffer(bytes), done); });
  }

  beast::error_code send_get(std::string_view target, bool keep_alive = true) {
    http::request<http::empty_body> req(http::verb::get, target, 11);
    req.set(http::field::host, "127.0.0.1");
    req.keep_alive(keep_alive);
    return wait([&](auto done) { http::async_write(stream_, req, done); });
  }

  // The next response, or the error that ended the wait for it.
  beast::error_code receive(Response& res) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxBodyBytes);
    const auto ec = wait([&](auto done) { http::async_read(stream_, buffer_, parser, done); });
    if (!ec) res = parser.release();
    return ec;
  }

  Response get(std::string_view target, bool keep_alive = true) {
    Response res;
    if (const auto ec = send_get(target, keep_alive)) throw std::runtime_error("send: " + ec.message());
    if (const auto ec = receive(res)) throw std::runtime_error("receive: " + ec.message());
    return res;
  }

  // Whether the server closed the connection: a read ends in EOF or a reset, not in
  // this client's own timeout (nor in more data).
  bool closed_by_server() {
    char byte;
    const auto ec = wait([&](auto done) { stream_.async_read_some(asio::buffer(&byte, 1), done); });
    return ec && ec != beast::error::timeout;
  }

 private:
  template <class Start>
  beast::error_code wait(Start start) {
    beast::error_code result = asio::error::would_block;
    stream_.expires_after(kClientTimeout);
    start([&result](beast::error_code ec, std::size_t) { result = ec; });
    context_.restart();
    context_.run();
    return result;
  }

  asio::io_context context_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

std::string body_of(std::uint64_t id, std::size_t bytes) {
  std::string body(bytes, '\0');
  fill_body(id, body);
  return body;
}

class ServerTest : public testing::Test {
 protected:
  void start(ServerOptions options = {}) {
    server_.emplace(options);
    thread_ = std::thread([this] { server_->run(); });
  }
  // Returns how long run() took to return after stop().
  Clock::duration stop() {
    const auto begin = Clock::now();
    server_->stop();
    thread_.join();
    const auto took = Clock::now() - begin;
    server_.reset();
    return took;
  }
  void TearDown() override {
    if (server_) stop();
  }
  Client connect() { return Client(server_->port()); }

  std::optional<Server> server_;
  std::thread thread_;
};

TEST_F(ServerTest, AnswersWithTheBodyOfTheId) {
  start();
  Client client = connect();
  for (std::size_t bytes : {0, 1, 7, 8, 1003, 65536}) {
    const Response res = client.get(work_target({0, bytes, 0, 42}));
    EXPECT_EQ(res.result(), http::status::ok) << bytes;
    EXPECT_EQ(res[http::field::content_type], "application/octet-stream");
    EXPECT_EQ(res[http::field::content_length], std::to_string(bytes));
    EXPECT_EQ(res.body(), body_of(42, bytes)) << bytes;
    EXPECT_TRUE(res.keep_alive());
  }
  // Another id, another body.
  EXPECT_NE(body_checksum(client.get(work_target({0, 64, 0, 43})).body()), body_checksum(body_of(42, 64)));
}

TEST_F(ServerTest, FailsTheIdsThatDrawAFailure) {
  start();
  std::optional<std::uint64_t> failing, passing;
  for (std::uint64_t id = 0; !failing || !passing; ++id) (draws_failure(id, 0.3) ? failing : passing) = id;
  Client client = connect();
  EXPECT_EQ(client.get(work_target({0, 16, 0.3, *failing})).result(), http::status::internal_server_error);
  const Response ok = client.get(work_target({0, 16, 0.3, *passing}));
  EXPECT_EQ(ok.result(), http::status::ok);
  EXPECT_EQ(ok.body(), body_of(*passing, 16));
}

TEST_F(ServerTest, ServesManyRequestsOnOneConnection) {
  start();
  Client client = connect();
  for (std::uint64_t id = 0; id < 200; ++id) {
    const Response res = client.get(work_target({0, id % 100, 0, id}));
    ASSERT_EQ(res.result(), http::status::ok) << id;
    ASSERT_EQ(res.body(), body_of(id, id % 100)) << id;
  }
}

TEST_F(ServerTest, ConnectionCloseClosesIt) {
  start();
  Client client = connect();
  const Response res = client.get("/work?bytes=10", false);
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_FALSE(res.keep_alive());
  EXPECT_TRUE(client.closed_by_server());

  // HTTP/1.0 without keep-alive closes as well.
  Client old = connect();
  ASSERT_FALSE(old.send("GET /work?bytes=3 HTTP/1.0\r\n\r\n"));
  Response res10;
  ASSERT_FALSE(old.receive(res10));
  EXPECT_EQ(res10.result(), http::status::ok);
  EXPECT_EQ(res10.body(), body_of(0, 3));
  EXPECT_TRUE(old.closed_by_server());
}

// The delay is a timer: on one thread, waiting requests overlap.
TEST_F(ServerTest, DelaysOverlapOnOneThread) {
  start({.threads = 1});
  constexpr int kConnections = 10;
  constexpr auto kDelay = 200ms;
  std::deque<Client> clients;
  for (int i = 0; i < kConnections; ++i) clients.emplace_back(server_->port());
  const auto begin = Clock::now();
  for (int i = 0; i < kConnections; ++i)
    ASSERT_FALSE(clients[i].send_get(work_target({200'000, 32, 0, std::uint64_t(i)})));
  for (int i = 0; i < kConnections; ++i) {
    Response res;
    ASSERT_FALSE(clients[i].receive(res));
    EXPECT_EQ(res.body(), body_of(i, 32));
  }
  const auto took = Clock::now() - begin;
  EXPECT_GE(took, kDelay);
  // One after another would take 10 x 200 ms; the bound is generous for a busy machine.
  EXPECT_LT(took, kConnections * kDelay / 2);
}

TEST_F(ServerTest, SeveralThreadsServeManyConnections) {
  start({.threads = 3});
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int c = 0; c < 6; ++c)
    threads.emplace_back([&, c] {
      Client client = connect();
      for (std::uint64_t i = 0; i < 30; ++i) {
        const std::uint64_t id = c * 1000 + i;
        const Response res = client.get(work_target({i % 3 * 1000, 257, 0.1, id}));
        if (draws_failure(id, 0.1) ? res.result() == http::status::internal_server_error
                                   : res.result() == http::status::ok && res.body() == body_of(id, 257))
          ++good;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(good, 6 * 30);
}

TEST_F(ServerTest, BadTargetOrMethodGets400AndKeepsTheConnection) {
  start();
  Client client = connect();
  for (const char* target : {"/", "/work?id=x", "/work?fail=2", "/work?colour=red", "/work?id=1&id=2"}) {
    const Response res = client.get(target);
    EXPECT_EQ(res.result(), http::status::bad_request) << target;
    EXPECT_FALSE(res.body().empty());
    EXPECT_TRUE(res.keep_alive());
  }
  ASSERT_FALSE(client.send("DELETE /work HTTP/1.1\r\nHost: x\r\n\r\n"));
  Response deleted;
  ASSERT_FALSE(client.receive(deleted));
  EXPECT_EQ(deleted.result(), http::status::bad_request);
  const Response res = client.get(work_target({0, 100, 0, 5}));
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res.body(), body_of(5, 100));
}

// Bytes that are not HTTP get 400 (431 for huge headers) or a closed connection;
// the server goes on serving everyone else.
TEST_F(ServerTest, GarbageClosesOnlyItsConnection) {
  start();
  std::string random(4096, '\0');
  std::mt19937_64 rng(1);
  for (char& c : random) c = static_cast<char>(rng());
  const std::vector<std::string> garbage = {
      "HELLO\r\n\r\n",
      "GET /work HTTP/9.x\r\n\r\n",
      "GET /work\r\nHost: x\r\n\r\n",
      "GET /work HTTP/1.1\r\nno colon here\r\n\r\n",
      random,
      "GET /work HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(100 * 1024, 'a') + "\r\n\r\n",
      "POST /work HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
  };
  for (const std::string& bytes : garbage) {
    const std::string shown = bytes.substr(0, 30);
    {
      Client client = connect();
      client.send(bytes);  // may fail: the server can close before it has read it all
      Response res;
      if (!client.receive(res)) {
        EXPECT_TRUE(res.result() == http::status::bad_request ||
                    res.result() == http::status::request_header_fields_too_large)
            << shown << ": " << res.result_int();
        EXPECT_FALSE(res.keep_alive()) << shown;
        EXPECT_TRUE(client.closed_by_server()) << shown;
      } else {
        EXPECT_TRUE(client.closed_by_server()) << shown;
      }
    }
    Client next = connect();
    const Response res = next.get(work_target({0, 9, 0, 1}));
    EXPECT_EQ(res.result(), http::status::ok) << shown;
    EXPECT_EQ(res.body(), body_of(1, 9)) << shown;
  }
}

// The server's resident memory, in this process (the server runs on a thread here).
std::size_t resident_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

TEST_F(ServerTest, BodiesAreWrittenInPiecesSoThatSlowReadersHoldLittle) {
  // Bodies across piece boundaries arrive whole and right.
  start();
  Client client = connect();
  for (std::size_t bytes : {65535, 65536, 65537, 3 * 65536 + 5}) {
    const Response res = client.get(work_target({0, bytes, 0, 7}));
    EXPECT_EQ(res.body(), body_of(7, bytes)) << bytes;
  }
  // Ten peers that ask for the largest body (64 MiB) and never read it: the server
  // holds a piece each, where it once held the whole body (640 MiB in all).
  const std::size_t before = resident_bytes();
  std::deque<Client> readers;
  for (std::uint64_t id = 0; id < 10; ++id) {
    readers.emplace_back(server_->port());
    ASSERT_FALSE(readers.back().send_get(work_target({0, kMaxBodyBytes, 0, id})));
  }
  std::this_thread::sleep_for(500ms);  // for the server to write what the sockets take
  EXPECT_LT(resident_bytes(), before + 32 * (std::size_t{1} << 20));
}

TEST_F(ServerTest, ConnectionsPastTheCapAreClosed) {
  start({.max_connections = 2});
  Client first = connect(), second = connect();
  EXPECT_EQ(first.get("/work?bytes=1").result(), http::status::ok);
  EXPECT_EQ(second.get("/work?bytes=1").result(), http::status::ok);
  Client third = connect();
  EXPECT_TRUE(third.closed_by_server());
  EXPECT_EQ(first.get("/work?bytes=1").result(), http::status::ok);  // the others go on
}

TEST_F(ServerTest, HalfSentRequestIsClosedAfterTheIdleTimeout) {
  start({.idle_timeout = 200ms});
  Client client = connect();
  ASSERT_FALSE(client.send("GET /work HTTP/1.1\r\nHost: x\r\n"));
  const auto begin = Clock::now();
  EXPECT_TRUE(client.closed_by_server());
  EXPECT_LT(Clock::now() - begin, 5s);
}

TEST_F(ServerTest, IdleKeepAliveConnectionIsClosedAfterTheIdleTimeout) {
  start({.idle_timeout = 200ms});
  Client client = connect();
  EXPECT_EQ(client.get("/work?bytes=1").result(), http::status::ok);
  const auto begin = Clock::now();
  EXPECT_TRUE(client.closed_by_server());
  EXPECT_LT(Clock::now() - begin, 5s);
}

// A delay longer than the idle timeout is not cut short by it, nor is the write
// after it (a body too large for one write_some on loopback).
TEST_F(ServerTest, DelayMayOutlastTheIdleTimeout) {
  start({.idle_timeout = 100ms});
  Client client = connect();
  constexpr std::size_t kBytes = 16 << 20;
  const Response res = client.get(work_target({300'000, kBytes, 0, 8}));
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_TRUE(res.body() == body_of(8, kBytes));
}

TEST_F(ServerTest, StopDoesNotWaitForDelays) {
  start({.threads = 2});
  std::deque<Client> clients;
  for (std::uint64_t i = 0; i < 5; ++i) {
    clients.emplace_back(server_->port());
    ASSERT_FALSE(clients.back().send_get(work_target({10'000'000, 10, 0, i})));
  }
  std::this_thread::sleep_for(100ms);  // let the server read them and start waiting
  EXPECT_LT(stop(), 2s);
  for (Client& client : clients) EXPECT_TRUE(client.closed_by_server());
}

TEST_F(ServerTest, StopBeforeRunReturnsAtOnce) {
  Server server({});
  server.stop();
  server.run();
}

TEST_F(ServerTest, PortInUseThrowsNamingTheAddress) {
  start();
  const std::uint16_t port = server_->port();
  ASSERT_NE(port, 0);
  try {
    Server second({.port = port});
    FAIL() << "a second server listens on the same port";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on 127.0.0.1:" + std::to_string(port)), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(Server({.bind = "not-an-address"}), std::runtime_error);
}

}  // namespace
}  // namespace concbench::fan_out
