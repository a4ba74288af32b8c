#include "models/offload.hpp"
#include "models/test_main.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/fiber/future.hpp>
#include <boost/fiber/operations.hpp>
#include <gtest/gtest.h>
#include <oneapi/tbb/parallel_for.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

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

Bytes reply_pid(std::span<const std::byte>) {
  pid_t pid = ::getpid();
  Bytes out(sizeof pid);
  std::memcpy(out.data(), &pid, sizeof pid);
  return out;
}

Bytes echo(std::span<const std::byte> in) { return {in.begin(), in.end()}; }

Bytes fail(std::span<const std::byte>) { throw std::runtime_error("task failed on purpose"); }

// Writes its pid to the file named by the payload, then sleeps for 30 s.
Bytes announce_and_sleep(std::span<const std::byte> path) {
  {
    std::ofstream(std::string(reinterpret_cast<const char*>(path.data()), path.size())) << ::getpid() << std::flush;
  }
  std::this_thread::sleep_for(30s);
  return {};
}

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

pid_t as_pid(const Bytes& bytes) {
  pid_t pid = 0;
  if (bytes.size() == sizeof pid) std::memcpy(&pid, bytes.data(), sizeof pid);
  return pid;
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

TEST(ProcessPool, ReportsATaskExceptionAsAnError) {
  TaskResult result = rt().process_pool.run(fail, {});
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.error, "task failed on purpose");
  EXPECT_TRUE(rt().process_pool.run(echo, text("still fine")).ok());
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
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  for (auto deadline = Clock::now() + 5s; !is_zombie_or_gone(victim) && Clock::now() < deadline;)
    std::this_thread::sleep_for(1ms);
  std::set<pid_t> ran_on;
  for (int i = 0; i < 8; ++i) {
    TaskResult r = pool.run(reply_pid, {});
    ASSERT_TRUE(r.ok()) << r.error;
    ran_on.insert(as_pid(r.data));
  }
  EXPECT_EQ(ran_on.count(victim), 0u);
  EXPECT_EQ(pool.replacements(), replaced_before + 1);
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
