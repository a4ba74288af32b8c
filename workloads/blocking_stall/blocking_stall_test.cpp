#include "workloads/blocking_stall/blocking_stall.hpp"

#include "models/test_main.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <map>
#include <thread>

namespace concbench::blocking_stall {
namespace {

using namespace std::chrono_literals;

Params small(Kind kind, Offload offload, std::uint64_t work_us) {
  Params p{kind, offload, work_us, 1000.0};
  p.cpu_bytes = kind == Kind::cpu ? cpu_bytes_for(work_us, 1e9) : 0;
  p.duration = 40ms;
  return p;
}

std::string describe(Model model, const Params& p) {
  return std::string(model_name(model)) + " kind:" + std::string(kind_name(p.kind)) +
         " offload:" + std::string(offload_name(p.offload)) + " work_us:" + std::to_string(p.work_us);
}

TEST(BlockingStall, ScheduleIsOpenLoopAndOrdered) {
  Params p = small(Kind::sleep, Offload::inline_call, 100);
  auto requests = schedule(p);
  std::size_t light = 0, heavy = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(requests[i].id, i);
    if (i > 0) {
      EXPECT_LE(requests[i - 1].arrival, requests[i].arrival);
    }
    EXPECT_LT(requests[i].arrival, p.duration);
    (requests[i].heavy ? heavy : light)++;
  }
  EXPECT_EQ(light, 40u);  // one per ms
  EXPECT_EQ(heavy, 20u);  // one in every 2 ms
  EXPECT_EQ(heavy_interval(p), 2ms);
  p.work_us = 30000;
  EXPECT_EQ(heavy_interval(p), 120ms);  // heavy work keeps a thread at most 25% busy
}

TEST(BlockingStall, ReferenceCatchesALostOrDoubledRequest) {
  Params p = small(Kind::cpu, Offload::inline_call, 10);
  Outcome ref = reference(p);
  EXPECT_EQ(ref.light + ref.heavy, schedule(p).size());
  Outcome doubled = ref;
  doubled.checksum += light_work(3);
  EXPECT_NE(doubled, ref);
  EXPECT_NE(heavy_work(Kind::cpu, 10, p.cpu_bytes, 1), heavy_work(Kind::cpu, 10, p.cpu_bytes, 2));
  EXPECT_NE(heavy_work(Kind::sleep, 10, 0, 1), heavy_work(Kind::sleep, 10, 0, 2));
}

TEST(BlockingStall, CpuWorkScalesWithTheCalibratedSpeed) {
  EXPECT_EQ(cpu_bytes_for(1000, 1e9), 1000000u);
  EXPECT_EQ(cpu_bytes_for(0, 1e9), 64u);  // never less than a light request
}

double thread_cpu_ms() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

TEST(BlockingStall, ABlockingCallHoldsItsThreadWithoutTheCpu) {
  const double cpu_before = thread_cpu_ms();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) block_for(10ms);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
  EXPECT_LT(thread_cpu_ms() - cpu_before, 25) << "a blocking call must not spin";
  const auto zero = std::chrono::steady_clock::now();
  block_for(0us);  // work 0, the floor: no call at all
  EXPECT_LT(std::chrono::steady_clock::now() - zero, 5ms);
}

// Each thread blocks on a timer of its own; a forked child makes its own too, or it
// would re-arm its parent's (a shared timer wakes both at the child's deadline).
TEST(BlockingStall, AForkedChildBlocksOnATimerOfItsOwn) {
  block_for(1us);  // this thread has its timer now
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::this_thread::sleep_for(10ms);  // the parent is blocked by now
    block_for(1ms);
    ::_exit(0);
  }
  const auto start = std::chrono::steady_clock::now();
  block_for(100ms);
  const auto took = std::chrono::steady_clock::now() - start;
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_GE(took, 100ms) << "the child's call ended the parent's";
}

TEST(BlockingStall, GridHasAFloorAndOneTwoFiveSteps) {
  for (Kind kind : {Kind::cpu, Kind::sleep}) {
    std::map<Offload, std::vector<std::uint64_t>> work;
    for (const Params& p : parameter_sets(Suite::standard, Model::event_loop, 2, 1e9)) {
      if (p.kind != kind) continue;
      work[p.offload].push_back(p.work_us);
      if (p.work_us == 0) {
        EXPECT_EQ(p.duration, 100ms);
      }
    }
    const std::vector<std::uint64_t> steps{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};
    std::vector<std::uint64_t> with_floor{0};
    with_floor.insert(with_floor.end(), steps.begin(), steps.end());
    EXPECT_EQ(work[Offload::inline_call], with_floor) << "the floor runs inline only, once per kind";
    EXPECT_EQ(work[Offload::threads], steps);
    EXPECT_EQ(work[Offload::processes], steps);
  }
  EXPECT_EQ(parameter_sets(Suite::full, Model::fibers, 2, 1e9).back().work_us, 100000u);
  // A pool of one thread would repeat the event loop; thread_pool runs from 2 workers.
  EXPECT_TRUE(parameter_sets(Suite::standard, Model::thread_pool, 1, 1e9).empty());
  std::vector<std::uint64_t> pool_work;
  for (const Params& p : parameter_sets(Suite::standard, Model::thread_pool, 2, 1e9))
    if (p.kind == Kind::cpu && p.offload == Offload::processes) pool_work.push_back(p.work_us);
  EXPECT_EQ(pool_work, (std::vector<std::uint64_t>{1, 10, 100, 1000, 10000})) << "a pool's sizes in decades";
  EXPECT_TRUE(parameter_sets(Suite::standard, Model::process_pool, 2, 1e9).empty());
  EXPECT_GE(repetitions(Suite::standard), 7) << "the rule's fewest runs per cell";
  EXPECT_GE(peer_repetitions(Suite::standard), 7) << "the rule's fewest runs per cell";
  EXPECT_GE(repetitions(Suite::full), repetitions(Suite::standard));
  EXPECT_GE(repetitions(Suite::quick), 1);
}

struct Case {
  Model model;
  Offload offload;
};

class EveryModelAndOffload : public testing::TestWithParam<Case> {};

TEST_P(EveryModelAndOffload, EveryRequestEndsOnceWithTheRightResult) {
  auto [model, offload] = GetParam();
  for (Kind kind : {Kind::cpu, Kind::sleep}) {
    Params p = small(kind, offload, 500);
    Measurements m;
    Outcome got = run(model, test_runtimes(), p, m);
    EXPECT_EQ(got, reference(p)) << describe(model, p) << ": " << to_string(got);
    EXPECT_EQ(m.light.count() + m.heavy.count(), schedule(p).size()) << describe(model, p);
    EXPECT_GT(m.lag.count(), 0u) << "the ticker never ticked";
    // Light requests ran on the loop's one thread, or on at most the pool's workers,
    // and their waits for a CPU were read where the kernel keeps them.
    EXPECT_GE(m.serving_threads.size(), 1u) << describe(model, p);
    EXPECT_LE(m.serving_threads.size(), model == Model::thread_pool ? kTestWorkers : 1u) << describe(model, p);
    if (std::filesystem::exists("/proc/self/schedstat")) {
      EXPECT_TRUE(m.serving_wait.has_value()) << describe(model, p);
    }
    // Every inline heavy call is timed, and only those.
    EXPECT_EQ(m.stall.count(), offload == Offload::inline_call ? reference(p).heavy : 0u) << describe(model, p);
    if (offload == Offload::inline_call && kind == Kind::sleep) {
      EXPECT_GE(m.stall.percentile_us(0.5), 500) << "a blocking call took less than it blocks";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    BlockingStall, EveryModelAndOffload,
    testing::Values(Case{Model::event_loop, Offload::inline_call}, Case{Model::event_loop, Offload::threads},
                    Case{Model::event_loop, Offload::processes}, Case{Model::fibers, Offload::inline_call},
                    Case{Model::fibers, Offload::threads}, Case{Model::fibers, Offload::processes},
                    Case{Model::thread_pool, Offload::inline_call}, Case{Model::thread_pool, Offload::processes}),
    [](const auto& info) {
      return std::string(model_name(info.param.model)) + "_" + std::string(offload_name(info.param.offload));
    });

// An inline stall shows in the light requests and the ticks behind it; offloaded,
// it does not.
TEST(BlockingStall, InlineStallIsVisibleAndOffloadHidesIt) {
  for (Offload offload : {Offload::inline_call, Offload::threads}) {
    Params p = small(Kind::sleep, offload, 20000);
    p.duration = 80ms;  // one heavy request, in [0, 80 ms)
    Measurements m;
    Outcome got = run(Model::event_loop, test_runtimes(), p, m);
    ASSERT_EQ(got, reference(p));
    if (offload == Offload::inline_call) {
      EXPECT_GE(m.light.percentile_us(1.0), 15000) << "requests that arrived during the stall waited for it";
      EXPECT_GE(m.lag.percentile_us(1.0), 15000);
    } else {
      EXPECT_LT(m.light.percentile_us(1.0), 15000) << "the loop stalled although the call was offloaded";
    }
  }
}

std::size_t thread_count() {
  auto tasks = std::filesystem::directory_iterator("/proc/self/task");
  return static_cast<std::size_t>(std::distance(begin(tasks), end(tasks)));
}

// Arrivals stop while a heavy call is still offloaded: the run waits for it and
// counts it once, and leaves no thread or worker process behind.
TEST(BlockingStall, ARunWaitsForOffloadedWorkStillInFlightWhenArrivalsStop) {
  Params base = small(Kind::sleep, Offload::threads, 100000);
  base.duration = 300ms;  // heavy interval 400 ms: one heavy request, at ~247 ms
  std::vector<Request> heavy;
  for (const Request& r : schedule(base))
    if (r.heavy) heavy.push_back(r);
  ASSERT_EQ(heavy.size(), 1u);
  const auto busy_until = heavy[0].arrival + 100ms;
  ASSERT_GT(busy_until, base.duration) << "the heavy call must outlast the arrivals";

  auto& pool = test_runtimes().process_pool;
  for (auto [model, offload] : {Case{Model::event_loop, Offload::threads}, Case{Model::event_loop, Offload::processes},
                                Case{Model::fibers, Offload::threads}, Case{Model::fibers, Offload::processes},
                                Case{Model::thread_pool, Offload::processes}}) {
    Params p = base;
    p.offload = offload;
    Measurements warm_up;  // starts any thread a runtime creates on first use
    run(model, test_runtimes(), small(p.kind, offload, 10), warm_up);
    const std::size_t threads = thread_count();
    const auto workers = pool.worker_pids();

    Measurements m;
    const auto start = std::chrono::steady_clock::now();
    Outcome got = run(model, test_runtimes(), p, m);
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(got, reference(p)) << describe(model, p) << ": " << to_string(got);
    EXPECT_GE(took, busy_until) << describe(model, p) << ": returned before its heavy call ended";
    EXPECT_GE(m.heavy.percentile_us(1.0), 100000) << describe(model, p);
    EXPECT_EQ(thread_count(), threads) << describe(model, p);
    EXPECT_EQ(pool.worker_pids(), workers) << describe(model, p);
  }
}

TEST(BlockingStall, KilledWorkerFailsItsRequestAndTheRunGoesOn) {
  Params p = small(Kind::sleep, Offload::processes, 300000);
  p.duration = 800ms;  // heavy interval 1.2 s: one heavy request, at ~742 ms, until ~1040 ms
  auto& pool = test_runtimes().process_pool;
  std::thread killer([&pool] {
    std::this_thread::sleep_for(900ms);
    for (pid_t pid : pool.worker_pids()) ::kill(pid, SIGKILL);  // one of them runs the call
  });
  Measurements m;
  Outcome got = run(Model::event_loop, test_runtimes(), p, m);
  killer.join();
  Outcome ref = reference(p);
  EXPECT_EQ(got.failed, 1u);
  EXPECT_EQ(got.heavy, ref.heavy - 1);
  EXPECT_EQ(got.light, ref.light);
  EXPECT_EQ(m.light.count() + m.heavy.count(), schedule(p).size());  // the failed one too
  EXPECT_EQ(pool.run(heavy_task, heavy_message(small(Kind::sleep, Offload::processes, 1), 0)).ok(), true)
      << "the pool replaced its workers";
}

}  // namespace
}  // namespace concbench::blocking_stall
