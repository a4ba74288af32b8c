// The fan_out clients against an in-process concbench server: every model ends
// every request exactly once with the right body, fails fast without leaking,
// times out on time, and reports a server that is down at once.
#include "models/test_main.hpp"
#include "workloads/fan_out/fan_out.hpp"
#include "workloads/fan_out/fan_out_server.hpp"

#include <gtest/gtest.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/partitioner.h>

#include <sys/socket.h>

#include <filesystem>
#include <functional>
#include <thread>

namespace concbench::fan_out {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Client {
  std::string name;
  Model model;
  PoolSize size;
  std::function<Outcome(const Target&, const Expected&, Measurements&)> run;
};

std::vector<Client> clients() {
  Runtimes& rt = test_runtimes();
  auto with = [&rt](Model model, PoolSize size) {
    return [&rt, model, size](const Target& t, const Expected& e, Measurements& m) {
      return run(model, size, rt, t, e, m);
    };
  };
  std::vector<Client> out;
  for (Model model : kModels) {
    if (!supports(model)) continue;
    out.push_back({std::string(model_name(model)), model, PoolSize::workers, with(model, PoolSize::workers)});
    if (model == Model::thread_pool)
      out.push_back({"thread_pool per_request", model, PoolSize::per_request, with(model, PoolSize::per_request)});
  }
  return out;
}

class FanOutClient : public testing::Test {
 protected:
  void SetUp() override {
    thread_ = std::thread([this] { server_.run(); });
    target_ = {"127.0.0.1", server_.port()};
  }
  void TearDown() override {
    server_.stop();
    thread_.join();
  }

  Server server_{ServerOptions{}};
  std::thread thread_;
  Target target_;
};

std::size_t open_descriptors() {
  return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/fd"), {}));
}
// What the descriptors are, for a failure message.
std::string descriptor_list() {
  std::string out;
  for (const auto& fd : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    out += fd.path().filename().string() + "->" + std::filesystem::read_symlink(fd.path(), ec).string() + " ";
  }
  return out;
}
std::size_t live_threads() {
  return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/task"), {}));
}
// The in-process server closes its side of each connection when it sees the
// client's close, a moment later: a count that a leak keeps up never gets back.
bool settles_to(std::size_t (*count)(), std::size_t baseline) {
  for (auto deadline = Clock::now() + 3s; Clock::now() < deadline; std::this_thread::sleep_for(5ms))
    if (count() <= baseline) return true;
  return false;
}

TEST_F(FanOutClient, EveryModelSettlesEveryRequestWithTheRightBody) {
  // More requests than K and than connections, bodies of odd length, some failing.
  const Expected e = reference({60, 7, 2000, 1001, 0.1, Group::settled});
  ASSERT_GT(e.settled.failed, 0u);
  for (const Client& c : clients()) {
    Measurements m;
    const Outcome got = c.run(target_, e, m);
    EXPECT_EQ(got, e.settled) << c.name;  // ok_sum: the ok bodies' checksums, each body checked on arrival
    EXPECT_EQ(m.latency.count(), 60u) << c.name;
  }
}

TEST_F(FanOutClient, ZeroRequestsEndAtOnce) {
  const Expected e = reference({0, 4, 0, 64, 0, Group::settled});
  for (const Client& c : clients()) {
    Measurements m;
    EXPECT_EQ(c.run(target_, e, m), Outcome{}) << c.name;
  }
}

TEST_F(FanOutClient, FailFastCancelsTheSiblingsAndLeaksNothing) {
  // With 200 ms each and K=8, most requests are still waiting or in flight when
  // the first failure arrives.
  const Expected e = reference({40, 8, 200000, 64, 0.3, Group::all});
  std::uint64_t first_failure = 0;
  while (!draws_failure(first_failure, 0.3)) ++first_failure;
  ASSERT_LT(first_failure, 8u);  // so that its siblings are many
  // oneTBB starts its worker threads when work first needs them and keeps them: get
  // every one of them going before counting, or a busy machine makes that look like a leak.
  std::atomic<unsigned> busy{0};
  test_runtimes().thread_pool.run([&] {
    tbb::parallel_for(0u, test_runtimes().thread_pool.threads(), [&](unsigned) {
      ++busy;
      for (const auto until = Clock::now() + 5s; busy < test_runtimes().thread_pool.threads() && Clock::now() < until;)
        std::this_thread::yield();
    }, tbb::simple_partitioner{});
  });
  const Expected warm_up = reference({2, 2, 0, 64, 0, Group::settled});
  for (const Client& c : clients()) {
    Measurements m;
    c.run(target_, warm_up, m);  // first use of a model's runtime may create what it keeps
    const std::size_t descriptors = open_descriptors(), threads = live_threads();
    const auto start = Clock::now();
    const Outcome got = c.run(target_, e, m);
    const auto took = Clock::now() - start;
    EXPECT_TRUE(matches(got, e)) << c.name << ": " << to_string(got);
    EXPECT_GE(got.failed, 1u) << c.name;
    EXPECT_GT(got.cancelled, 0u) << c.name;
    EXPECT_TRUE(m.cancel.has_value()) << c.name << ": the stop was not timed";
    // Stopped soon after the first failure: the requests up to it, then slack.
    Params up_to_failure = e.p;
    up_to_failure.n = first_failure + 1;
    const auto bound = ideal_time(up_to_failure, in_flight_limit(c.model, c.size, test_runtimes().workers, e.p)) + 600ms;
    EXPECT_LT(took, bound) << c.name;
    EXPECT_TRUE(settles_to(open_descriptors, descriptors))
        << c.name << ": a connection outlived the run; " << descriptors << " before, now " << descriptor_list();
    EXPECT_TRUE(settles_to(live_threads, threads)) << c.name << ": a thread outlived the run";
  }
}

TEST_F(FanOutClient, SettledReturnsEveryOutcomeDespiteFailures) {
  const Expected e = reference({30, 30, 1000, 64, 0.5, Group::settled});
  for (const Client& c : clients()) {
    Measurements m;
    const Outcome got = c.run(target_, e, m);
    EXPECT_EQ(got.total(), 30u) << c.name;
    EXPECT_EQ(got, e.settled) << c.name;
    EXPECT_FALSE(m.cancel.has_value()) << c.name << ": settled never stops";
  }
}

TEST_F(FanOutClient, ARequestPastItsTimeoutEndsTimedOutOnTime) {
  Params p{3, 3, 2'000'000, 64, 0, Group::settled};
  p.timeout = 100ms;
  const Expected e = reference(p);
  for (const Client& c : clients()) {
    Measurements m;
    const Outcome got = c.run(target_, e, m);
    EXPECT_EQ(got.timed_out, 3u) << c.name << ": " << to_string(got);
    EXPECT_EQ(got.total(), 3u) << c.name;
    // Each ends within T + 20 ms of its start (serial's three run one after another).
    EXPECT_LE(m.latency.percentile_us(1.0), 120'000) << c.name;
  }
}

TEST_F(FanOutClient, AConnectionBusyPastTheTimeoutTimesOutNoRequestInTime) {
  // One connection, requests of 40 ms against a timeout of 100 ms: the connection
  // stays busy for longer than the timeout, so a deadline kept per connection
  // must follow each request's own start, not the first one's.
  Params p{6, 1, 40'000, 64, 0, Group::settled};
  p.timeout = 100ms;
  const Expected e = reference(p);
  for (const Client& c : clients()) {
    Measurements m;
    EXPECT_EQ(c.run(target_, e, m), e.settled) << c.name;
  }
}

TEST(FanOutClientWithoutServer, AServerThatIsDownIsAClearErrorAtOnce) {
  // A port that nothing listens on: bound, then closed.
  std::uint16_t port;
  {
    asio::io_context context;
    asio::ip::tcp::acceptor acceptor(context, {asio::ip::make_address("127.0.0.1"), 0});
    port = acceptor.local_endpoint().port();
  }
  const Expected e = reference({20, 4, 0, 64, 0, Group::settled});
  for (const Client& c : clients()) {
    Measurements m;
    const auto start = Clock::now();
    try {
      c.run({"127.0.0.1", port}, e, m);
      ADD_FAILURE() << c.name << ": no error";
    } catch (const std::runtime_error& error) {
      EXPECT_NE(std::string(error.what()).find("cannot reach the server at 127.0.0.1:" + std::to_string(port)),
                std::string::npos)
          << c.name << ": " << error.what();
    }
    EXPECT_LT(Clock::now() - start, 1s) << c.name;
  }
}

}  // namespace
}  // namespace concbench::fan_out
