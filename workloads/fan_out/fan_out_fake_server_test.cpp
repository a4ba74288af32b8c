// The fan_out clients against a fake server that answers as each test chooses,
// which the real server never does: every model must fail the run on a wrong
// answer and pass unusual but correct HTTP, fail-fast must stop the requests in
// flight at once, and a request that hangs on a reused connection must time out
// at its own deadline (not at an earlier request's, and not never).
#include "models/test_main.hpp"
#include "workloads/fan_out/fan_out.hpp"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <optional>
#include <stdexcept>
#include <thread>

namespace concbench::fan_out {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---- The fake server ----------------------------------------------------------------

// What the fake server does with one request.
struct Reply {
  std::string bytes;   // sent as they are, right or wrong
  bool close = false;  // then close the connection (read-to-close bodies, Connection: close)
  bool hold = false;   // send nothing and keep the request until the client goes
};
// How to answer request `id`, the `nth` to arrive (from 0, over all connections).
// Called on the connection's own thread: it may block.
using Answer = std::function<Reply(std::uint64_t id, std::uint64_t nth)>;

// A held request is held this long at most, then its connection is closed: a client
// that never gives up then fails with an error instead of hanging the test.
constexpr auto kHoldCap = 2s;

// HTTP on 127.0.0.1, an ephemeral port, one thread per connection; keep-alive
// unless a reply closes. Plain sockets rather than Asio, so that nothing here
// shares code with the client under test.
class FakeServer {
 public:
  explicit FakeServer(Answer answer) : answer_(std::move(answer)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&address), size) != 0 ||
        ::listen(listener_, 64) != 0 || ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &size) != 0)
      throw std::runtime_error("fake server: cannot listen on 127.0.0.1");
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~FakeServer() {
    stop_ = true;
    acceptor_.join();
    for (auto& s : sessions_) s.join();
    ::close(listener_);
  }
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  Target target() const { return {"127.0.0.1", port_}; }

 private:
  // Every wait polls in short steps, so that the destructor ends it soon.
  bool ready(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 10) > 0;
  }
  void accept_loop() {
    while (!stop_)
      if (ready(listener_))
        if (const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC); fd >= 0)
          sessions_.emplace_back([this, fd] {
            session(fd);
            ::close(fd);
          });
  }
  // Appends what the client sends; false once it closed, the server stops or `until` passed.
  bool receive(int fd, std::string& in, Clock::time_point until = Clock::time_point::max()) {
    while (!stop_ && Clock::now() < until) {
      if (!ready(fd)) continue;
      char buffer[4096];
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) return false;
      in.append(buffer, static_cast<std::size_t>(n));
      return true;
    }
    return false;
  }
  void session(int fd) {
    std::string in;
    for (;;) {
      std::size_t head_end;
      while ((head_end = in.find("\r\n\r\n")) == std::string::npos)
        if (!receive(fd, in)) return;
      // "GET <target> HTTP/1.1": the id is the contract's, parsed as the real server does.
      const std::string head = in.substr(0, head_end);
      in.erase(0, head_end + 4);
      const auto target_start = head.find(' ') + 1;
      const auto q =
          parse_work_target(std::string_view(head).substr(target_start, head.find(' ', target_start) - target_start));
      if (!q) {
        ADD_FAILURE() << "fake server: not a work request: " << head;
        return;
      }
      const Reply reply = answer_(q->id, nth_++);
      if (reply.hold) {
        for (const auto until = Clock::now() + kHoldCap; receive(fd, in, until);) {
        }
        return;
      }
      for (std::size_t sent = 0; sent < reply.bytes.size();) {
        const ssize_t n = ::send(fd, reply.bytes.data() + sent, reply.bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return;
        sent += static_cast<std::size_t>(n);
      }
      if (reply.close) {
        // End of stream for the client; closing at once could reset the connection
        // before it read the answer.
        ::shutdown(fd, SHUT_WR);
        while (receive(fd, in)) {
        }
        return;
      }
    }
  }

  Answer answer_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> nth_{0};
  std::thread acceptor_;
  std::vector<std::thread> sessions_;  // the acceptor's until the destructor joins it
};

// ---- Answers ---------------------------------------------------------------------------

constexpr std::size_t kBytes = 100;
constexpr std::uint64_t kBad = 5;  // the request that gets the wrong answer

std::string body_of(std::uint64_t id, std::size_t bytes = kBytes) {
  std::string body(bytes, '\0');
  fill_body(id, body);
  return body;
}
std::string response(const std::string& body, const std::string& fields = "", const std::string& status = "200 OK") {
  return "HTTP/1.1 " + status + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + fields + "\r\n" + body;
}
Reply good(std::uint64_t id) { return {response(body_of(id))}; }
Reply held() { return {"", false, true}; }
// Answers request kBad with `bad`, every other one correctly.
Answer on_one(std::function<Reply(std::uint64_t id)> bad) {
  return [bad](std::uint64_t id, std::uint64_t) { return id == kBad ? bad(id) : good(id); };
}
// Answers every request with `each`.
Answer on_all(std::function<Reply(std::uint64_t id)> each) {
  return [each](std::uint64_t id, std::uint64_t) { return each(id); };
}

struct AnswerCase {
  std::string name;
  bool correct;  // the run must pass; else it must fail with an error
  Answer answer;
};
void PrintTo(const AnswerCase& a, std::ostream* out) { *out << a.name; }

std::vector<AnswerCase> answer_cases() {
  const std::string over_limit(0x2000, 'a');  // past the body limit: max(bytes asked, 4096)
  return {
      {"plain", true, on_all(good)},
      {"chunked", true, on_all([](std::uint64_t id) {
         const std::string b = body_of(id);  // 100 bytes: two chunks of 0x32
         return Reply{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n" + b.substr(0, 50) + "\r\n32\r\n" +
                      b.substr(50) + "\r\n0\r\n\r\n"};
       })},
      {"connection_close", true, on_all([](std::uint64_t id) {
         return Reply{response(body_of(id), "Connection: close\r\n"), true};
       })},
      {"http10_read_to_close", true, on_all([](std::uint64_t id) {
         return Reply{"HTTP/1.0 200 OK\r\n\r\n" + body_of(id), true};
       })},

      {"changed_body_byte", false, on_one([](std::uint64_t id) {
         std::string b = body_of(id);
         b[7] ^= 1;
         return Reply{response(b)};
       })},
      {"another_ids_body", false, on_one([](std::uint64_t id) { return Reply{response(body_of(id + 1))}; })},
      {"body_one_byte_short", false, on_one([](std::uint64_t id) { return Reply{response(body_of(id, kBytes - 1))}; })},
      {"body_one_byte_long", false, on_one([](std::uint64_t id) { return Reply{response(body_of(id, kBytes + 1))}; })},
      {"huge_content_length", false, on_one([](std::uint64_t id) {
         return Reply{"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n" + body_of(id)};
       })},
      {"chunked_over_the_body_limit", false, on_one([over_limit](std::uint64_t) {
         return Reply{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2000\r\n" + over_limit + "\r\n0\r\n\r\n"};
       })},
      {"read_to_close_over_the_body_limit", false, on_one([over_limit](std::uint64_t) {
         return Reply{"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + over_limit, true};
       })},
      {"truncated_body_then_close", false, on_one([](std::uint64_t id) {
         return Reply{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + body_of(id).substr(0, 40), true};
       })},
      {"close_without_answer", false, on_one([](std::uint64_t) {
         return Reply{"", true};
       })},
      {"status_404", false, on_one([](std::uint64_t) { return Reply{response("", "", "404 Not Found")}; })},
      {"status_500_not_drawn", false,
       on_one([](std::uint64_t) { return Reply{response("", "", "500 Internal Server Error")}; })},
      // Complete and correct but for one header line without a colon: a lenient parser would pass it.
      {"malformed_header", false,
       on_one([](std::uint64_t id) { return Reply{response(body_of(id), "Bad Header\r\n")}; })},
      // On every response: the run has more requests than connections, so some
      // connection reads its next answer after the extra bytes, whatever the order.
      {"extra_bytes_after_each_response", false,
       on_all([](std::uint64_t id) { return Reply{response(body_of(id)) + "GARBAGE"}; })},
      {"each_response_twice", false,
       on_all([](std::uint64_t id) { return Reply{response(body_of(id)) + response(body_of(id))}; })},
  };
}

// ---- Clients -----------------------------------------------------------------------------

struct Client {
  std::string name;
  Model model;
  PoolSize size;
  Outcome run(const Target& target, const Expected& e, Measurements& m) const {
    return fan_out::run(model, size, test_runtimes(), target, e, m);
  }
  // The most requests it holds in flight.
  std::uint64_t in_flight(const Params& p) const { return in_flight_limit(model, size, test_runtimes().workers, p); }
};

std::vector<Client> clients() {
  std::vector<Client> out;
  for (Model model : kModels) {
    if (!supports(model)) continue;
    out.push_back({std::string(model_name(model)), model, PoolSize::workers});
    if (model == Model::thread_pool) out.push_back({"thread_pool per_request", model, PoolSize::per_request});
  }
  return out;
}

// ---- Tests -------------------------------------------------------------------------------

class FanOutFakeServerAnswer : public testing::TestWithParam<AnswerCase> {};

TEST_P(FanOutFakeServerAnswer, PassesIfCorrectElseFailsTheRunAtOnce) {
  const AnswerCase& a = GetParam();
  // More requests than connections (at most K=3, or --workers for the pool) and
  // fail=0: a 500 is as wrong as a 404.
  const Expected e = reference({30, 3, 0, kBytes, 0, Group::settled});
  for (const Client& c : clients()) {
    FakeServer server(a.answer);
    Measurements m;
    const auto start = Clock::now();
    try {
      const Outcome got = c.run(server.target(), e, m);
      if (a.correct)
        EXPECT_EQ(got, e.settled) << c.name << ": " << to_string(got);
      else
        ADD_FAILURE() << c.name << ": no error; " << to_string(got);
    } catch (const std::exception& error) {
      // The contract: a wrong answer throws, naming the request or the server.
      const std::string what = error.what();
      EXPECT_FALSE(a.correct) << c.name << ": " << what;
      EXPECT_TRUE(what.starts_with("request ") ||
                  what.find("127.0.0.1:" + std::to_string(server.target().port)) != std::string::npos)
          << c.name << ": an unclear error: " << what;
      if (a.name == "malformed_header") {  // the server was reached: it answered wrong
        EXPECT_NE(what.find("malformed answer"), std::string::npos) << c.name << ": " << what;
      }
    }
    // Found on arrival, not by the 1 s timeout.
    EXPECT_LT(Clock::now() - start, 700ms) << c.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Answers, FanOutFakeServerAnswer, testing::ValuesIn(answer_cases()),
                         [](const auto& info) { return info.param.name; });

// A client's run against the fake server: its outcome and how long it took, or
// none when it threw (recorded as a failure). A request the client never ended is
// held by the fake server until kHoldCap, then closed.
struct TimedRun {
  Outcome got;
  Clock::duration took;
};
std::optional<TimedRun> timed_run(const Client& c, const FakeServer& server, const Expected& e, Measurements& m) {
  const auto start = Clock::now();
  try {
    Outcome got = c.run(server.target(), e, m);
    return TimedRun{got, Clock::now() - start};
  } catch (const std::exception& error) {
    ADD_FAILURE() << c.name << ": " << error.what();
    return std::nullopt;
  }
}

TEST(FanOutFakeServer, FailFastStopsTheRequestsInFlightAtOnce) {
  // Every request draws a failure (fail=1), so a 500 is right for any of them: the
  // server answers the first to arrive with 500 once every request the model holds
  // in flight is there, and holds the others for 2 s. The run must end long before,
  // with one failure and every other request cancelled: those in flight, and those
  // waiting for a slot or never started (N = 2K).
  Params p{16, 8, 0, kBytes, 1.0, Group::all};
  p.timeout = 5s;  // the held requests must end by cancel, not time out
  const Expected e = reference(p);
  for (const Client& c : clients()) {
    const std::uint64_t in_flight = c.in_flight(p);  // K; 1 for serial, --workers for pool:workers
    std::atomic<std::uint64_t> arrived{0};
    FakeServer server([&](std::uint64_t, std::uint64_t nth) {
      ++arrived;
      if (nth > 0) return held();
      for (const auto until = Clock::now() + kHoldCap; arrived < in_flight && Clock::now() < until;)
        std::this_thread::sleep_for(1ms);
      return Reply{response("", "", "500 Internal Server Error")};
    });
    Measurements m;
    const auto run = timed_run(c, server, e, m);
    if (!run) continue;
    const auto& [got, took] = *run;
    EXPECT_TRUE(matches(got, e)) << c.name << ": " << to_string(got);
    EXPECT_EQ(arrived.load(), in_flight) << c.name << ": requests sent";
    EXPECT_EQ(got.failed, 1u) << c.name;
    EXPECT_EQ(got.cancelled, p.n - 1) << c.name << ": " << in_flight - 1 << " of them in flight";
    EXPECT_LT(took, 500ms) << c.name;
    EXPECT_TRUE(m.cancel.has_value() && *m.cancel < 400ms) << c.name << ": the stop took long or was not timed";
  }
}

TEST(FanOutFakeServer, ARequestHangingOnAReusedConnectionTimesOutAtItsOwnDeadline) {
  // K=1: the second request goes on the first one's keep-alive connection. The first
  // takes 100 ms, so its deadline (T after its start) passes while the second is
  // pending: the second must outlive it and end T after its own start, which a
  // deadline kept per connection reaches only by re-arming.
  constexpr auto kT = 200ms, kFirst = 100ms;
  Params p{2, 1, 0, kBytes, 0, Group::settled};
  p.timeout = kT;
  const Expected e = reference(p);
  for (const Client& c : clients()) {
    FakeServer server([&](std::uint64_t id, std::uint64_t nth) {
      if (nth > 0) return held();
      std::this_thread::sleep_for(kFirst);
      return good(id);
    });
    Measurements m;
    const auto run = timed_run(c, server, e, m);
    if (!run) continue;
    const auto& [got, took] = *run;
    EXPECT_EQ(got.ok, 1u) << c.name << ": " << to_string(got);
    EXPECT_EQ(got.timed_out, 1u) << c.name << ": " << to_string(got);
    EXPECT_GE(took, kFirst + kT - 5ms) << c.name << ": closed at the first request's deadline";
    EXPECT_LT(took, kFirst + kT + 150ms) << c.name;
    EXPECT_GE(m.latency.percentile_us(1.0), 1000.0 * (kT - 5ms).count()) << c.name;
  }
}

}  // namespace
}  // namespace concbench::fan_out
