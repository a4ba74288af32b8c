#include "workloads/blocking_stall/blocking_stall.hpp"

#include "models/test_main.hpp"

#include <gtest/gtest.h>

#include <signal.h>

#include <filesystem>
#include <iterator>
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
    // Every inline heavy call is timed, and only those.
    EXPECT_EQ(m.stall.count(), offload == Offload::inline_call ? reference(p).heavy : 0u) << describe(model, p);
    if (offload == Offload::inline_call && kind == Kind::sleep) {
      EXPECT_GE(m.stall.percentile_us(0.5), 500) << "a sleep call took less than it sleeps";
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
