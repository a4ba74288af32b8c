#include "models/fiber_io.hpp"
#include "models/offload.hpp"
#include "models/test_main.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/fiber/future.hpp>
#include <boost/fiber/operations.hpp>
#include <gtest/gtest.h>
#include <oneapi/tbb/parallel_for.h>

#include <signal.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <cstring>
#include <filesystem>
#include <future>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <type_traits>

namespace concbench {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

Runtimes& rt() { return test_runtimes(); }

// ---- event_loop ----

asio::awaitable<std::thread::id> loop_thread_id() { co_return std::this_thread::get_id(); }
asio::awaitable<int> throws_on_loop() {
  throw std::runtime_error("boom");
  co_return 0;
}

TEST(EventLoop, RunsCoroutinesOnItsOwnThread) {
  EXPECT_EQ(rt().event_loop.run(loop_thread_id()), rt().event_loop.thread_id());
  EXPECT_NE(rt().event_loop.thread_id(), std::this_thread::get_id());
}

TEST(EventLoop, RethrowsToTheCaller) { EXPECT_THROW(rt().event_loop.run(throws_on_loop()), std::runtime_error); }

// ---- fibers ----

TEST(FiberPool, RoundRobinInterleavesFibersOnOneThread) {
  auto [order, threads] = rt().fibers.run([] {
    std::vector<int> order;
    std::set<std::thread::id> threads;
    auto worker = [&](int id) {
      for (int i = 0; i < 3; ++i) {
        order.push_back(id);
        threads.insert(std::this_thread::get_id());
        boost::this_fiber::yield();
      }
    };
    boost::fibers::fiber a(worker, 1), b(worker, 2);
    a.join();
    b.join();
    return std::pair{order, threads};
  });
  EXPECT_EQ(order, (std::vector<int>{1, 2, 1, 2, 1, 2}));
  EXPECT_EQ(threads.size(), 1u);
}

TEST(FiberPool, WorkStealingSpreadsBusyFibersOverItsThreads) {
  // Idle threads sleep (suspend=true); submitted work must still reach them.
  auto& pool = rt().fibers_mt;
  auto threads = pool.run([&pool] {
    std::vector<boost::fibers::future<std::thread::id>> parts;
    for (int i = 0; i < 16; ++i)
      parts.push_back(pool.submit([] {
        auto until = Clock::now() + 5ms;
        while (Clock::now() < until) {
        }
        return std::this_thread::get_id();
      }));
    std::set<std::thread::id> seen;
    for (auto& part : parts) seen.insert(part.get());
    return seen.size();
  });
  EXPECT_EQ(threads, kTestWorkers);
}

TEST(FiberPool, RejectsBadSizes) {
  EXPECT_THROW(FiberPool(FiberScheduler::round_robin, 2), std::invalid_argument);
  EXPECT_THROW(FiberPool(FiberScheduler::round_robin, 0), std::invalid_argument);
}

// ---- fibers: I/O on the pool's own threads ----

using boost::system::error_code;
using tcp = asio::ip::tcp;

// Waits on `timer` from a fiber; returns the wait's error code.
error_code wait_on(asio::steady_timer& timer) {
  auto [ec] = fiber_await<error_code>(timer.get_executor(), [&](auto done) { timer.async_wait(std::move(done)); });
  return ec;
}

// A connected pair of sockets over loopback, both of the calling thread's context.
std::pair<tcp::socket, tcp::socket> loopback_pair() {
  tcp::acceptor acceptor(FiberPool::thread_context(), {asio::ip::make_address("127.0.0.1"), 0});
  tcp::socket client(FiberPool::thread_context());
  auto accepting = boost::fibers::async([&] {
    return fiber_await<error_code, tcp::socket>(acceptor.get_executor(),
                                                 [&](auto done) { acceptor.async_accept(std::move(done)); });
  });
  auto [connect_ec] = fiber_await<error_code>(
      client.get_executor(), [&](auto done) { client.async_connect(acceptor.local_endpoint(), std::move(done)); });
  auto [accept_ec, server] = accepting.get();
  if (connect_ec || accept_ec) throw boost::system::system_error(connect_ec ? connect_ec : accept_ec);
  return {std::move(client), std::move(server)};
}

TEST(FiberIo, ThreadContextIsThePoolThreadsOwn) {
  EXPECT_THROW(FiberPool::thread_context(), std::logic_error);
  auto [first, again] = rt().fibers.run([] { return std::pair{&FiberPool::thread_context(), &FiberPool::thread_context()}; });
  EXPECT_EQ(first, again);
  EXPECT_NE(first, rt().fibers_mt.run([] { return &FiberPool::thread_context(); }));
}

TEST(FiberIo, TimerWaitSuspendsOnlyItsFiber) {
  auto [order, ticks, waited, ec] = rt().fibers.run([] {
    std::string order;
    int ticks = 0;
    Clock::duration waited{};
    error_code ec;
    boost::fibers::fiber waiter([&] {
      asio::steady_timer timer(FiberPool::thread_context(), 50ms);
      const auto start = Clock::now();
      ec = wait_on(timer);
      waited = Clock::now() - start;
      order += 'w';
    });
    boost::fibers::fiber sibling([&] {
      for (int i = 0; i < 10; ++i) {
        ++ticks;
        boost::this_fiber::sleep_for(1ms);
      }
      order += 's';
    });
    waiter.join();
    sibling.join();
    return std::tuple{order, ticks, waited, ec};
  });
  EXPECT_EQ(order, "sw") << "the sibling must finish while the timer is pending";
  EXPECT_EQ(ticks, 10);
  EXPECT_GE(waited, 50ms);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(rt().fibers.pending_io(), 0u);
}

TEST(FiberIo, BusyFibersDoNotStarveCompletions) {
  // One fiber yields until another sets the flag after a 1 ms timer: the timer's
  // completion must get in while a fiber is always ready.
  auto flag = std::make_shared<std::atomic<bool>>(false);
  auto result = std::make_shared<std::promise<long>>();
  auto finished = result->get_future();
  rt().fibers.post([flag, result] {
    boost::fibers::fiber setter([flag] {
      asio::steady_timer timer(FiberPool::thread_context(), 1ms);
      wait_on(timer);
      *flag = true;
    });
    long yields = 0;
    while (!*flag) {
      ++yields;
      boost::this_fiber::yield();
    }
    setter.join();
    result->set_value(yields);
  });
  if (finished.wait_for(10s) != std::future_status::ready) {
    *flag = true;  // lets the pool recover, so that the failure does not hang the run
    finished.wait();
    FAIL() << "a timer completion starved behind a yielding fiber";
  }
  EXPECT_GT(finished.get(), 0) << "the yielding fiber ran while the timer was pending";
}

TEST(FiberIo, FiberSleepsStayPrecise) {
  // Sleeping fibers wake on an Asio timer: a wait in the io_context itself would
  // round every sleep up to a whole millisecond once the thread has a reactor.
  auto median = rt().fibers.run([] {
    asio::steady_timer make_a_reactor(FiberPool::thread_context());
    std::vector<Clock::duration> slept;
    for (int i = 0; i < 21; ++i) {
      const auto start = Clock::now();
      boost::this_fiber::sleep_for(100us);
      slept.push_back(Clock::now() - start);
    }
    std::nth_element(slept.begin(), slept.begin() + 10, slept.end());
    return slept[10];
  });
  EXPECT_GE(median, 100us);
  EXPECT_LT(median, 700us);
}

// Reads 16 bytes and writes them back reversed.
void reverse_echo(tcp::socket& socket) {
  std::array<char, 16> message;
  auto [read_ec, read] = fiber_await<error_code, std::size_t>(
      socket.get_executor(), [&](auto done) { asio::async_read(socket, asio::buffer(message), std::move(done)); });
  if (read_ec) throw boost::system::system_error(read_ec);
  std::reverse(message.begin(), message.end());
  auto [write_ec, written] = fiber_await<error_code, std::size_t>(
      socket.get_executor(), [&](auto done) { asio::async_write(socket, asio::buffer(message), std::move(done)); });
  if (write_ec) throw boost::system::system_error(write_ec);
}

TEST(FiberIo, ManyFibersDoTcpRoundTripsOnTheWorkStealingPool) {
  constexpr int kClients = 200;
  auto& pool = rt().fibers_mt;
  auto correct = pool.run([&pool] {
    tcp::acceptor acceptor(FiberPool::thread_context(), {asio::ip::make_address("127.0.0.1"), 0});
    const auto endpoint = acceptor.local_endpoint();
    auto server = pool.submit([&] {
      std::vector<boost::fibers::future<void>> echoes;
      for (int i = 0; i < kClients; ++i) {
        auto [ec, socket] = fiber_await<error_code, tcp::socket>(
            acceptor.get_executor(), [&](auto done) { acceptor.async_accept(std::move(done)); });
        if (ec) throw boost::system::system_error(ec);
        echoes.push_back(pool.submit([socket = std::make_shared<tcp::socket>(std::move(socket))] { reverse_echo(*socket); }));
      }
      for (auto& echo : echoes) echo.get();
    });
    std::vector<boost::fibers::future<bool>> clients;
    for (int i = 0; i < kClients; ++i)
      clients.push_back(pool.submit([i, endpoint] {
        asio::steady_timer timer(FiberPool::thread_context(), std::chrono::milliseconds(i % 5));
        if (wait_on(timer)) return false;
        tcp::socket socket(FiberPool::thread_context());
        auto [connect_ec] = fiber_await<error_code>(
            socket.get_executor(), [&](auto done) { socket.async_connect(endpoint, std::move(done)); });
        if (connect_ec) return false;
        char text[17];
        std::snprintf(text, sizeof text, "client %9d", i);
        std::string request(text, 16), reply(16, '\0');
        auto [write_ec, written] = fiber_await<error_code, std::size_t>(socket.get_executor(), [&](auto done) {
          asio::async_write(socket, asio::buffer(request), std::move(done));
        });
        auto [read_ec, read] = fiber_await<error_code, std::size_t>(socket.get_executor(), [&](auto done) {
          asio::async_read(socket, asio::buffer(reply), std::move(done));
        });
        std::reverse(request.begin(), request.end());
        return !write_ec && !read_ec && read == 16 && reply == request;
      }));
    int correct = 0;
    for (auto& client : clients) correct += client.get();
    server.get();
    return correct;
  });
  EXPECT_EQ(correct, kClients);
  EXPECT_EQ(pool.pending_io(), 0u) << "every operation's completion must be counted";
}

TEST(FiberIo, BeastComposedOperationsComplete) {
  namespace http = boost::beast::http;
  auto& pool = rt().fibers_mt;
  auto [status, body] = pool.run([&pool] {
    auto [client, server] = loopback_pair();
    auto serving = pool.submit([&server] {
      boost::beast::flat_buffer buffer;
      http::request_parser<http::string_body> parser;
      auto [read_ec, read] = fiber_await<error_code, std::size_t>(
          server.get_executor(), [&](auto done) { http::async_read(server, buffer, parser, std::move(done)); });
      if (read_ec) throw boost::system::system_error(read_ec);
      http::response<http::string_body> response(http::status::ok, 11);
      response.body() = "served " + std::string(parser.get().target());
      response.prepare_payload();
      auto [write_ec, written] = fiber_await<error_code, std::size_t>(
          server.get_executor(), [&](auto done) { http::async_write(server, response, std::move(done)); });
      if (write_ec) throw boost::system::system_error(write_ec);
    });
    http::request<http::empty_body> request(http::verb::get, "/item/7", 11);
    auto [write_ec, written] = fiber_await<error_code, std::size_t>(
        client.get_executor(), [&](auto done) { http::async_write(client, request, std::move(done)); });
    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    auto [read_ec, read] = fiber_await<error_code, std::size_t>(
        client.get_executor(), [&](auto done) { http::async_read(client, buffer, parser, std::move(done)); });
    serving.get();
    if (write_ec || read_ec) throw boost::system::system_error(write_ec ? write_ec : read_ec);
    return std::pair{parser.get().result_int(), parser.get().body()};
  });
  EXPECT_EQ(status, 200u);
  EXPECT_EQ(body, "served /item/7");
}

TEST(FiberIo, CancellingThroughTheExecutorAbortsThePendingOperation) {
  auto& pool = rt().fibers_mt;
  auto [timer_ec, timer_waited, read_ec, read_waited] = pool.run([&pool] {
    // A timer, cancelled by a post from another fiber (perhaps on another thread).
    asio::steady_timer timer(FiberPool::thread_context(), 10s);
    auto start = Clock::now();
    auto canceller = pool.submit([&timer] {
      boost::this_fiber::sleep_for(5ms);
      asio::post(timer.get_executor(), [&timer] { timer.cancel(); });
    });
    const error_code timer_ec = wait_on(timer);
    const auto timer_waited = Clock::now() - start;
    canceller.get();

    // A read with nothing to read, cancelled from another fiber that waits for
    // the cancel to have run.
    auto [client, server] = loopback_pair();
    start = Clock::now();
    auto read_canceller = pool.submit([&server] {
      boost::this_fiber::sleep_for(5ms);
      fiber_await<>(server.get_executor(), [&](auto done) {
        server.cancel();
        done();
      });
    });
    char byte;
    auto [read_ec, read] = fiber_await<error_code, std::size_t>(
        server.get_executor(), [&](auto done) { server.async_read_some(asio::buffer(&byte, 1), std::move(done)); });
    const auto read_waited = Clock::now() - start;
    read_canceller.get();
    return std::tuple{timer_ec, timer_waited, read_ec, read_waited};
  });
  EXPECT_EQ(timer_ec, asio::error::operation_aborted) << timer_ec.message();
  EXPECT_LT(timer_waited, 5s);
  EXPECT_EQ(read_ec, asio::error::operation_aborted) << read_ec.message();
  EXPECT_LT(read_waited, 5s);
  EXPECT_EQ(pool.pending_io(), 0u);
}

TEST(FiberIo, InitiationAndCompletionRunOnTheThreadThatOwnsTheObject) {
  // A fiber on the one-thread pool waits on a timer of a fibers_mt thread.
  auto [owner_io, owner] =
      rt().fibers_mt.run([] { return std::pair{&FiberPool::thread_context(), std::this_thread::get_id()}; });
  auto [started_on, completed_on, ec, waiter] = rt().fibers.run([owner_io = owner_io] {
    asio::steady_timer timer(*owner_io, 1ms);
    std::thread::id started_on, completed_on;
    auto [ec] = fiber_await<error_code>(timer.get_executor(), [&](auto done) {
      started_on = std::this_thread::get_id();
      timer.async_wait([&completed_on, done = std::move(done)](error_code ec) mutable {
        completed_on = std::this_thread::get_id();
        done(ec);
      });
    });
    return std::tuple{started_on, completed_on, ec, std::this_thread::get_id()};
  });
  EXPECT_EQ(started_on, owner);
  EXPECT_EQ(completed_on, owner);
  EXPECT_NE(waiter, owner);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(rt().fibers.pending_io(), 0u);
}

TEST(FiberIo, CompletionsRunOnAnotherThreadWhileTheFiberIsStillSuspending) {
  // Each completion runs on the one-thread pool's scheduler while the waiting
  // fiber, on a fibers_mt thread, may still be on its way into the wait. A
  // completion that had to wait for it (a fiber mutex, as in a fibers::promise)
  // would suspend the scheduler that runs it, and Boost.Fiber would crash.
  auto* other_io = rt().fibers.run([] { return &FiberPool::thread_context(); });
  constexpr int kFibers = 4, kWaits = 10000;
  auto& pool = rt().fibers_mt;
  auto completed = pool.run([&pool, other_io] {
    std::vector<boost::fibers::future<int>> fibers;
    for (int f = 0; f < kFibers; ++f)
      fibers.push_back(pool.submit([other_io] {
        int completed = 0;
        for (int i = 0; i < kWaits; ++i) {
          auto [n] = fiber_await<int>(other_io->get_executor(), [](auto done) { done(1); });
          completed += n;
        }
        return completed;
      }));
    int completed = 0;
    for (auto& f : fibers) completed += f.get();
    return completed;
  });
  EXPECT_EQ(completed, kFibers * kWaits);
}

TEST(FiberIo, ShutdownFinishesJobsWaitingOnIoAndExits) {
  auto finished = std::make_shared<std::atomic<int>>(0);
  auto destroyed = std::make_shared<std::promise<void>>();
  auto pool_gone = destroyed->get_future();
  std::thread([finished, destroyed] {
    {
      FiberPool pool(FiberScheduler::round_robin, 1);
      for (int i = 0; i < 3; ++i)
        pool.post([finished] {
          asio::steady_timer timer(FiberPool::thread_context(), 20ms);
          if (!wait_on(timer)) ++*finished;
        });
    }  // ~FiberPool: closes the channel while the timers are pending
    destroyed->set_value();
  }).detach();
  ASSERT_EQ(pool_gone.wait_for(10s), std::future_status::ready) << "the pool's thread did not exit";
  EXPECT_EQ(*finished, 3) << "jobs waiting on I/O must finish before the pool goes";
}

TEST(FiberIo, AnInitiationThatThrowsRethrowsInTheFiber) {
  auto what = rt().fibers.run([] {
    try {
      fiber_await<error_code>(FiberPool::thread_context().get_executor(),
                              [](auto) { throw std::runtime_error("could not start"); });
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  });
  EXPECT_EQ(what, "could not start");
  EXPECT_EQ(rt().fibers.pending_io(), 0u);
}

// ---- thread_pool ----

TEST(ThreadPool, ParallelAlgorithmsUseItsThreads) {
  std::mutex mutex;
  std::set<std::thread::id> seen;
  rt().thread_pool.run([&] {
    tbb::parallel_for(0, 64, [&](int) {
      auto until = Clock::now() + 2ms;
      while (Clock::now() < until) {
      }
      std::lock_guard lock(mutex);
      seen.insert(std::this_thread::get_id());
    });
  });
  EXPECT_EQ(seen.size(), kTestWorkers);
}

TEST(ThreadPool, PostedJobsRunWithASingleThread) {
  ThreadPool one(1);  // no caller inside the arena: a TBB worker must take the job
  std::promise<std::thread::id> ran;
  one.post([&ran] { ran.set_value(std::this_thread::get_id()); });
  auto done = ran.get_future();
  ASSERT_EQ(done.wait_for(5s), std::future_status::ready);
  EXPECT_NE(done.get(), std::this_thread::get_id());
}

// ---- offloading to the thread pool ----

// A coroutine on the loop that counts 1 ms ticks until `stop` is set.
asio::awaitable<void> tick(int& ticks, const bool& stop) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (!stop) {
    ++ticks;
    timer.expires_after(1ms);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

asio::awaitable<std::tuple<int, bool, int>> offload_a_blocking_call(ThreadPool& pool, std::thread::id loop) {
  int ticks = 0;
  bool stop = false;
  asio::co_spawn(co_await asio::this_coro::executor, tick(ticks, stop), asio::detached);
  int value = co_await async_offload(
      pool,
      [] {
        std::this_thread::sleep_for(50ms);  // blocks a pool thread, not the loop
        return 42;
      },
      asio::use_awaitable);
  stop = true;
  co_return std::tuple{value, std::this_thread::get_id() == loop, ticks};
}

asio::awaitable<std::string> offload_that_throws(ThreadPool& pool) {
  try {
    co_await async_offload(pool, []() -> int { throw std::runtime_error("offloaded failure"); }, asio::use_awaitable);
  } catch (const std::runtime_error& e) {
    co_return e.what();
  }
  co_return "no exception";
}

TEST(Offload, ThreadPoolWorkLeavesTheEventLoopRunning) {
  auto [value, on_loop, ticks] =
      rt().event_loop.run(offload_a_blocking_call(rt().thread_pool, rt().event_loop.thread_id()));
  EXPECT_EQ(value, 42);
  EXPECT_TRUE(on_loop) << "the coroutine must resume on its own loop";
  EXPECT_GE(ticks, 10) << "the loop stalled while the work was offloaded";
  EXPECT_EQ(rt().event_loop.run(offload_that_throws(rt().thread_pool)), "offloaded failure");
}

// On a fiber: waits for `result` while a ticker fiber on the same thread counts
// 1 ms ticks; returns the value and the ticks (none if waiting blocked the thread).
template <class Future>
auto wait_while_ticking(Future& result) {
  std::atomic<bool> waiting{true};
  int ticks = 0;
  boost::fibers::fiber ticker([&] {
    while (waiting) {
      ++ticks;
      boost::this_fiber::sleep_for(1ms);
    }
  });
  auto value = result.get();  // suspends this fiber only
  waiting = false;
  ticker.join();
  return std::pair{value, ticks};
}

TEST(Offload, ThreadPoolWorkLeavesTheFiberThreadRunning) {
  auto [value, ticks] = rt().fibers.run([] {
    auto result = fiber_offload(rt().thread_pool, [] {
      std::this_thread::sleep_for(50ms);
      return 7;
    });
    return wait_while_ticking(result);
  });
  EXPECT_EQ(value, 7);
  EXPECT_GE(ticks, 10);
}

// ---- process_pool ----

static_assert(std::is_same_v<pid_t, int>, "pids travel as ints");

Bytes int_bytes(int value) {
  Bytes out(sizeof value);
  std::memcpy(out.data(), &value, sizeof value);
  return out;
}

int as_int(const Bytes& bytes) {
  int value = 0;
  if (bytes.size() == sizeof value) std::memcpy(&value, bytes.data(), sizeof value);
  return value;
}

pid_t as_pid(const Bytes& bytes) { return as_int(bytes); }

Bytes reply_pid(std::span<const std::byte>) { return int_bytes(::getpid()); }

Bytes echo(std::span<const std::byte> in) { return {in.begin(), in.end()}; }

// The scheduling policy the task ran under.
Bytes reply_policy(std::span<const std::byte>) { return int_bytes(::sched_getscheduler(0)); }

Bytes fail(std::span<const std::byte>) { throw std::runtime_error("task failed on purpose"); }

// Writes its pid to the file named by the payload, then sleeps for 30 s.
Bytes announce_and_sleep(std::span<const std::byte> path) {
  {
    std::ofstream(std::string(reinterpret_cast<const char*>(path.data()), path.size())) << ::getpid() << std::flush;
  }
  std::this_thread::sleep_for(30s);
  return {};
}

Bytes reply_pid_after_100ms(std::span<const std::byte> in) {
  std::this_thread::sleep_for(100ms);
  return reply_pid(in);
}

[[noreturn]] Bytes exit_3(std::span<const std::byte>) { ::_exit(3); }

Bytes sleep_200ms(std::span<const std::byte>) {
  std::this_thread::sleep_for(200ms);
  return {};
}

// 200 ms of CPU, however busy the machine (wall time would give less CPU under load).
Bytes spin_200ms(std::span<const std::byte>) {
  auto cpu_seconds = [] {
    timespec t{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
  };
  for (const double until = cpu_seconds() + 0.2; cpu_seconds() < until;) {
  }
  return {};
}

Bytes reply_pid_after_50ms(std::span<const std::byte> in) {
  std::this_thread::sleep_for(50ms);
  return reply_pid(in);
}

Bytes text(std::string_view s) {
  Bytes out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
  return out;
}


// Zombies among the children of `parent`.
int zombies_of(pid_t parent) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    pid_t ppid = 0;
    std::sscanf(line.c_str() + close + 2, "%c %d", &state, &ppid);
    if (ppid == parent && state == 'Z') ++count;
  }
  return count;
}

bool is_zombie_or_gone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  return line[line.rfind(')') + 2] == 'Z';
}

// Kills an idle worker and waits (up to 5 s) until it has died.
void kill_idle_worker(pid_t victim) {
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  for (auto deadline = Clock::now() + 5s; !is_zombie_or_gone(victim) && Clock::now() < deadline;)
    std::this_thread::sleep_for(1ms);
}

TEST(ProcessPool, RunsTasksInOtherProcesses) {
  auto& pool = rt().process_pool;
  EXPECT_EQ(pool.workers(), kTestWorkers);
  TaskResult result = pool.run(reply_pid, {});
  ASSERT_TRUE(result.ok()) << result.error;
  pid_t pid = as_pid(result.data);
  EXPECT_NE(pid, ::getpid());
  auto pids = pool.worker_pids();
  EXPECT_NE(std::find(pids.begin(), pids.end(), pid), pids.end());

  Bytes big(3 << 20);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = std::byte(i * 7);
  TaskResult copy = pool.run(echo, big);
  ASSERT_TRUE(copy.ok()) << copy.error;
  EXPECT_EQ(copy.data, big);
}

// Both ends read as much as the socket holds, so messages share reads and straddle
// them; each must still come out whole, at every size around the inbox's.
TEST(ProcessPool, MessagesOfEverySizeAroundTheInboxArriveWhole) {
  auto& pool = rt().process_pool;
  constexpr std::size_t k = Inbox::kCapacity;
  const std::size_t sizes[] = {0, 1, 15, 16, 17, 40, k - 17, k - 16, k - 1, k, k + 1, 2 * k + 3, 100'000, 7};
  std::vector<Bytes> sent;
  std::vector<std::promise<TaskResult>> replies(std::size(sizes) * 3);
  for (std::size_t i = 0; i < replies.size(); ++i) {
    Bytes payload(sizes[i % std::size(sizes)]);
    for (std::size_t j = 0; j < payload.size(); ++j) payload[j] = std::byte(i * 31 + j * 7);
    sent.push_back(payload);
    pool.submit(echo, std::move(payload), [&replies, i](TaskResult r) { replies[i].set_value(std::move(r)); });
  }
  for (std::size_t i = 0; i < replies.size(); ++i) {
    auto reply = replies[i].get_future();
    ASSERT_EQ(reply.wait_for(10s), std::future_status::ready) << "task " << i;
    TaskResult r = reply.get();
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.data, sent[i]) << "task " << i << " of " << sent[i].size() << " bytes";
  }
}

// With no more tasks waiting than workers, a task goes to the first worker that
// frees up, not into the queue of a worker busy with a long task.
TEST(ProcessPool, TheLastTasksGoToTheFirstFreeWorker) {
  ProcessPool pool(2);
  const auto start = Clock::now();
  std::promise<TaskResult> slow, medium, quick;
  pool.submit(sleep_200ms, {}, [&](TaskResult r) { slow.set_value(std::move(r)); });
  pool.submit(reply_pid_after_50ms, {}, [&](TaskResult r) { medium.set_value(std::move(r)); });
  pool.submit(reply_pid, {}, [&](TaskResult r) { quick.set_value(std::move(r)); });
  TaskResult got = quick.get_future().get();
  EXPECT_LT(Clock::now() - start, 150ms) << "the last task waited behind the 200 ms one";
  ASSERT_TRUE(got.ok()) << got.error;
  TaskResult beside = medium.get_future().get();
  EXPECT_EQ(as_pid(got.data), as_pid(beside.data)) << "it should have followed the 50 ms task";
  EXPECT_TRUE(slow.get_future().get().ok());
}

TEST(ProcessPool, ReportsATaskExceptionAsAnError) {
  TaskResult result = rt().process_pool.run(fail, {});
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.error, "task failed on purpose");
  EXPECT_TRUE(rt().process_pool.run(echo, text("still fine")).ok());
}

std::vector<std::future<TaskResult>> submit_all(ProcessPool& pool, std::initializer_list<ProcessTask> tasks) {
  std::vector<std::future<TaskResult>> results;
  for (ProcessTask task : tasks) {
    auto promise = std::make_shared<std::promise<TaskResult>>();
    results.push_back(promise->get_future());
    pool.submit(task, {}, [promise](TaskResult r) { promise->set_value(std::move(r)); });
  }
  return results;
}

// With a backlog, the worker holds the first task's reply back while the next two
// wait. The second task then kills it: only that task fails, and the first, whose
// reply died with the worker, runs again on the replacement.
TEST(ProcessPool, AWorkerThatDiesWithRepliesHeldBackFailsOnlyTheTaskItDiedOn) {
  ProcessPool pool(1);
  const pid_t first_worker = pool.worker_pids().front();
  // Seven tasks, so that the worker is sent four (more than n wait while it has n).
  auto results = submit_all(pool, {reply_pid_after_100ms, exit_3, reply_pid, reply_pid, reply_pid, reply_pid, reply_pid});
  for (auto& r : results) ASSERT_EQ(r.wait_for(10s), std::future_status::ready);
  std::vector<TaskResult> got;
  for (auto& r : results) got.push_back(r.get());
  const pid_t replacement = pool.worker_pids().front();
  ASSERT_NE(replacement, first_worker);
  EXPECT_FALSE(got[1].ok());
  EXPECT_NE(got[1].error.find("worker process " + std::to_string(first_worker) + " exited with status 3 while running the task"),
            std::string::npos)
      << got[1].error;
  for (std::size_t i : {0, 2, 3, 4, 5, 6}) {
    ASSERT_TRUE(got[i].ok()) << "task " << i << ": " << got[i].error;
    EXPECT_EQ(as_pid(got[i].data), replacement) << "task " << i << " should have run again after the crash";
  }
  EXPECT_EQ(pool.replacements(), 1u);
}

// Each death fails the one task that caused it, however many such tasks queue up
// together: none is blamed on its neighbours, and each task gets one result (a
// second would throw from its promise).
TEST(ProcessPool, TasksThatKillTheirWorkersEachFailAlone) {
  ProcessPool pool(2);
  auto results = submit_all(pool, {exit_3, reply_pid, exit_3, exit_3, reply_pid, reply_pid, exit_3, reply_pid, reply_pid});
  const std::set<std::size_t> killers{0, 2, 3, 6};
  for (std::size_t i = 0; i < results.size(); ++i) {
    ASSERT_EQ(results[i].wait_for(10s), std::future_status::ready) << "task " << i;
    TaskResult r = results[i].get();
    if (killers.count(i)) {
      EXPECT_NE(r.error.find("exited with status 3 while running the task"), std::string::npos) << "task " << i << ": " << r.error;
    } else {
      EXPECT_TRUE(r.ok()) << "task " << i << ": " << r.error;
    }
  }
  EXPECT_EQ(pool.replacements(), killers.size());
}

// The worker's test for a backlog: whole requests only, and what the socket holds
// counts as much as what was already read.
TEST(ProcessPool, InboxCountsWholeRequestsWaiting) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  Inbox inbox;
  const Bytes body(100);
  auto send = [&](std::size_t from, std::size_t to) {
    Bytes message(sizeof(ProcessRequestHeader) + body.size());
    ProcessRequestHeader header{0, body.size()};
    std::memcpy(message.data(), &header, sizeof header);
    ASSERT_EQ(::write(pair[0], message.data() + from, to - from), static_cast<ssize_t>(to - from));
  };
  const std::size_t whole = sizeof(ProcessRequestHeader) + body.size();
  EXPECT_FALSE(inbox.two_requests_waiting(pair[1]));
  send(0, whole);
  EXPECT_FALSE(inbox.two_requests_waiting(pair[1]));
  send(0, whole - 1);
  EXPECT_FALSE(inbox.two_requests_waiting(pair[1])) << "the second request is one byte short";
  send(whole - 1, whole);
  EXPECT_TRUE(inbox.two_requests_waiting(pair[1]));
  ::close(pair[0]);
  ::close(pair[1]);
}

TEST(ProcessPool, KilledWorkerFailsItsTaskAndIsReplaced) {
  auto& pool = rt().process_pool;
  const unsigned replaced_before = pool.replacements();
  auto path = std::filesystem::temp_directory_path() / ("concbench_pid_" + std::to_string(::getpid()));
  std::filesystem::remove(path);

  std::promise<TaskResult> promise;
  auto done = promise.get_future();
  pool.submit(announce_and_sleep, text(path.string()), [&](TaskResult r) { promise.set_value(std::move(r)); });
  pid_t victim = 0;
  for (auto deadline = Clock::now() + 5s; victim == 0 && Clock::now() < deadline;) {
    std::this_thread::sleep_for(1ms);
    std::ifstream(path) >> victim;
  }
  std::filesystem::remove(path);
  ASSERT_GT(victim, 0) << "the task never started";

  auto killed_at = Clock::now();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  ASSERT_EQ(done.wait_for(1s), std::future_status::ready) << "a dead worker's task must fail within 1 s";
  EXPECT_LT(Clock::now() - killed_at, 1s);
  TaskResult result = done.get();
  EXPECT_FALSE(result.ok());
  EXPECT_NE(result.error.find("worker process " + std::to_string(victim) + " was killed by signal 9"),
            std::string::npos)
      << result.error;

  EXPECT_EQ(pool.replacements(), replaced_before + 1);
  auto pids = pool.worker_pids();
  EXPECT_EQ(std::find(pids.begin(), pids.end(), victim), pids.end());
  EXPECT_EQ(zombies_of(pool.spawner_pid()), 0);
  EXPECT_EQ(zombies_of(::getpid()), 0);
  for (int i = 0; i < 4 * static_cast<int>(kTestWorkers); ++i) EXPECT_TRUE(pool.run(reply_pid, {}).ok());
}

TEST(ProcessPool, WorkerThatDiedWhileIdleIsReplacedBeforeItsNextTask) {
  auto& pool = rt().process_pool;
  const unsigned replaced_before = pool.replacements();
  pid_t victim = pool.worker_pids().front();
  ASSERT_NO_FATAL_FAILURE(kill_idle_worker(victim));
  std::set<pid_t> ran_on;
  for (int i = 0; i < 8; ++i) {
    TaskResult r = pool.run(reply_pid, {});
    ASSERT_TRUE(r.ok()) << r.error;
    ran_on.insert(as_pid(r.data));
  }
  EXPECT_EQ(ran_on.count(victim), 0u);
  EXPECT_EQ(pool.replacements(), replaced_before + 1);
}

TEST(ProcessPool, TasksRunUnderSchedIdleOnReplacementWorkersToo) {
  auto& pool = rt().process_pool;
  ASSERT_NE(::sched_getscheduler(0), SCHED_IDLE) << "the program itself runs under SCHED_IDLE";
  EXPECT_EQ(pool.worker_policy(), SCHED_IDLE);
  auto every_task_runs_under_sched_idle = [&] {
    for (unsigned i = 0; i < 2 * kTestWorkers; ++i) {
      TaskResult r = pool.run(reply_policy, {});
      ASSERT_TRUE(r.ok()) << r.error;
      EXPECT_EQ(as_int(r.data), SCHED_IDLE);
    }
  };
  every_task_runs_under_sched_idle();
  const pid_t victim = pool.worker_pids().front();
  ASSERT_NO_FATAL_FAILURE(kill_idle_worker(victim));
  every_task_runs_under_sched_idle();
  EXPECT_NE(pool.worker_pids().front(), victim);
}

TEST(ProcessPool, ShutsDownWithATaskInFlightAndReapsEverything) {
  std::promise<TaskResult> promise;
  auto done = promise.get_future();
  pid_t spawner = 0;
  auto start = Clock::now();
  {
    ProcessPool pool(1);
    spawner = pool.spawner_pid();
    pool.submit(sleep_200ms, {}, [&](TaskResult r) { promise.set_value(std::move(r)); });
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_LT(Clock::now() - start, 5s);
  ASSERT_EQ(done.wait_for(0s), std::future_status::ready) << "the in-flight task was never completed";
  EXPECT_FALSE(done.get().ok());  // its socket was closed under it
  EXPECT_EQ(::waitpid(spawner, nullptr, WNOHANG), -1);  // already reaped
  EXPECT_EQ(errno, ECHILD);
}

TEST(ProcessPool, CountsTheCpuTimeOfItsWorkers) {
  auto& pool = rt().process_pool;
  const double before = pool.worker_cpu_seconds();
  ASSERT_TRUE(pool.run(spin_200ms, {}).ok());
  EXPECT_GE(pool.worker_cpu_seconds() - before, 0.15);
}

asio::awaitable<std::pair<pid_t, bool>> offload_from_loop(ProcessPool& pool, std::thread::id loop_thread) {
  Bytes reply = co_await pool.async_run(reply_pid, {}, asio::use_awaitable);
  co_return std::pair{as_pid(reply), std::this_thread::get_id() == loop_thread};
}

asio::awaitable<std::string> failed_offload(ProcessPool& pool) {
  try {
    co_await pool.async_run(fail, {}, asio::use_awaitable);
  } catch (const ProcessTaskError& e) {
    co_return e.what();
  }
  co_return "no exception";
}

TEST(ProcessPool, CompletionResumesAnAsioCoroutineOnItsLoop) {
  auto [pid, on_loop] = rt().event_loop.run(offload_from_loop(rt().process_pool, rt().event_loop.thread_id()));
  EXPECT_GT(pid, 0);
  EXPECT_NE(pid, ::getpid());
  EXPECT_TRUE(on_loop);
  EXPECT_EQ(rt().event_loop.run(failed_offload(rt().process_pool)), "task failed on purpose");
}

TEST(ProcessPool, TheEventLoopRunsOnItsIoThread) {
  // So a coroutine reaches worker sockets itself, with no hop to another thread.
  EXPECT_EQ(rt().event_loop.thread_id(), rt().process_pool.io_thread_id());
  EXPECT_EQ(&rt().event_loop.context(), &rt().process_pool.io_context());
}

asio::awaitable<void> wait_an_hour() {
  asio::steady_timer timer(co_await asio::this_coro::executor, 1h);
  co_await timer.async_wait(asio::use_awaitable);
}

TEST(ProcessPool, ShutdownIsNotHeldUpByOtherWorkOnItsLoop) {
  auto start = Clock::now();
  {
    ProcessPool pool(1);
    EventLoop guest(pool.io_context(), pool.io_thread_id());
    EXPECT_EQ(guest.run(loop_thread_id()), pool.io_thread_id());
    asio::co_spawn(guest.context(), wait_an_hour(), asio::detached);
    auto [pid, on_loop] = guest.run(offload_from_loop(pool, guest.thread_id()));
    EXPECT_NE(pid, ::getpid());
    EXPECT_TRUE(on_loop);
  }
  EXPECT_LT(Clock::now() - start, 5s);
}

TEST(ProcessPool, CompletionWakesAFiberWithoutBlockingItsThread) {
  auto [pid, ticks] = rt().fibers.run([] {
    auto promise = std::make_shared<boost::fibers::promise<pid_t>>();
    auto reply = promise->get_future();
    rt().process_pool.submit(reply_pid_after_50ms, {}, [promise](TaskResult r) { promise->set_value(as_pid(r.data)); });
    return wait_while_ticking(reply);
  });
  EXPECT_GT(pid, 0);
  EXPECT_GE(ticks, 10) << "the fiber thread stalled while a fiber waited";
}

}  // namespace
}  // namespace concbench
