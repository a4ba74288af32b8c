#include "workloads/sched_stats.hpp"

#include <gtest/gtest.h>

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <mutex>
#include <thread>

namespace concbench {
namespace {

using namespace std::chrono_literals;

bool accounting_available() { return SchedSnapshot::take().since(SchedSnapshot{}, {this_thread_tid()}).has_value(); }

TEST(SchedStats, NoteThisThreadKeepsEachThreadOnce) {
  std::vector<pid_t> tids;
  note_this_thread(tids);
  note_this_thread(tids);
  std::thread([&] { note_this_thread(tids); }).join();
  ASSERT_EQ(tids.size(), 2u);
  EXPECT_EQ(tids[0], this_thread_tid());
  EXPECT_NE(tids[1], tids[0]);
}

// Two threads that spin on one CPU take turns: each waits for it about half the
// time, and the kernel takes it away from each of them.
TEST(SchedStats, ThreadsSharingOneCpuWaitForIt) {
  if (!accounting_available()) GTEST_SKIP() << "this kernel keeps no per-thread scheduler accounting";
  std::vector<pid_t> spinners;
  std::mutex mutex;
  std::atomic<int> ready = 0;
  const SchedSnapshot before = SchedSnapshot::take();
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  int cpu = 0;
  while (!CPU_ISSET(cpu, &allowed)) ++cpu;
  auto spin = [&] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    EXPECT_EQ(pthread_setaffinity_np(pthread_self(), sizeof one, &one), 0);
    {
      std::lock_guard lock(mutex);
      note_this_thread(spinners);
    }
    ++ready;
    while (ready < 2) {
    }
    for (auto until = std::chrono::steady_clock::now() + 200ms; std::chrono::steady_clock::now() < until;) {
    }
  };
  std::thread a(spin), b(spin);
  // Read before they end: a thread that has ended has no accounting to read.
  while (ready < 2) std::this_thread::yield();
  std::this_thread::sleep_for(150ms);
  const auto waited = SchedSnapshot::take().since(before, spinners);
  a.join();
  b.join();
  ASSERT_TRUE(waited.has_value());
  EXPECT_GE(waited->runq_wait, 40ms) << "two spinners on one CPU, 150 ms: each waits about half of it";
  EXPECT_GE(waited->involuntary_switches, 2u);
}

TEST(SchedStats, AThreadNotFoundGivesNothing) {
  const SchedSnapshot now = SchedSnapshot::take();
  EXPECT_FALSE(now.since(now, {-1}).has_value());
  // A thread absent from the first snapshot counts from zero: all it waited so far.
  if (!accounting_available()) GTEST_SKIP() << "this kernel keeps no per-thread scheduler accounting";
  const auto all = now.since(SchedSnapshot{}, {this_thread_tid()});
  const auto none = now.since(now, {this_thread_tid()});
  ASSERT_TRUE(all && none);
  EXPECT_EQ(none->runq_wait, 0ns);
  EXPECT_GE(all->runq_wait, none->runq_wait);
}

}  // namespace
}  // namespace concbench
