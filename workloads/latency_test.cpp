#include "workloads/latency.hpp"

#include <gtest/gtest.h>

#include <random>

namespace concbench {
namespace {

using namespace std::chrono_literals;

TEST(LatencyRecorder, NearestRankPercentilesOfAKnownSet) {
  LatencyRecorder r;
  std::vector<int> us(1000);
  for (int i = 0; i < 1000; ++i) us[i] = i + 1;  // 1..1000 us
  std::shuffle(us.begin(), us.end(), std::mt19937(42));
  for (int v : us) r.record(std::chrono::microseconds(v));
  Percentiles p = r.percentiles();
  EXPECT_EQ(p.count, 1000u);
  EXPECT_DOUBLE_EQ(p.p50_us, 500);
  EXPECT_DOUBLE_EQ(p.p90_us, 900);
  EXPECT_DOUBLE_EQ(p.p99_us, 990);
  EXPECT_DOUBLE_EQ(p.p999_us, 999);
  EXPECT_DOUBLE_EQ(p.max_us, 1000);
}

TEST(LatencyRecorder, SmallAndEmptySets) {
  LatencyRecorder r;
  EXPECT_EQ(r.percentiles().max_us, 0);
  r.record(7us);
  EXPECT_DOUBLE_EQ(r.percentile_us(0.5), 7);
  EXPECT_DOUBLE_EQ(r.percentile_us(0.999), 7);
  r.record(3us);
  EXPECT_DOUBLE_EQ(r.percentile_us(0.5), 3);  // rank ceil(0.5 * 2) = 1
  EXPECT_DOUBLE_EQ(r.percentile_us(1.0), 7);
  EXPECT_THROW(r.percentile_us(0), std::invalid_argument);
  EXPECT_THROW(r.percentile_us(1.5), std::invalid_argument);
}

TEST(LatencyRecorder, MergeKeepsEverySample) {
  LatencyRecorder a, b;
  a.record(1us);
  b.record(100us);
  b.record(50us);
  a.merge(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_DOUBLE_EQ(a.percentile_us(1.0), 100);
}

// A server that stalls for 10 ms while requests keep arriving every 1 ms: measured
// from the scheduled arrivals, the requests queued behind the stall show it;
// measured from when each was finally sent (closed-loop), they would not.
TEST(OpenLoopSchedule, LatencyCountsFromTheScheduledArrival) {
  const auto start = OpenLoopSchedule::Clock::time_point{};
  OpenLoopSchedule schedule(start, 1000.0);  // one request per ms
  EXPECT_EQ(schedule.arrival(0), start);
  EXPECT_EQ(schedule.arrival(5), start + 5ms);

  // Requests 0..99, each served in 100 us; request 10 holds the server for 10 ms,
  // so requests 11..19 wait for it.
  LatencyRecorder open_loop;
  auto free_at = start;
  for (std::uint64_t i = 0; i < 100; ++i) {
    auto begin = std::max(schedule.arrival(i), free_at);
    auto done = begin + (i == 10 ? 10ms : 100us);
    free_at = done;
    open_loop.record(schedule.latency(i, done));
  }
  Percentiles p = open_loop.percentiles();
  EXPECT_DOUBLE_EQ(p.max_us, 10000);  // the stalled request itself
  EXPECT_DOUBLE_EQ(p.p50_us, 100);
  // Request 11 arrived 1 ms into the stall and waited 9 ms, plus its own 100 us.
  EXPECT_DOUBLE_EQ(p.p99_us, 9100);
  // Requests 11..20 waited 9.1, 8.2, ... 1.0 ms: eleven of a hundred above 100 us.
  EXPECT_DOUBLE_EQ(p.p90_us, 1000);
}

TEST(OpenLoopSchedule, RejectsANonPositiveRate) {
  EXPECT_THROW(OpenLoopSchedule({}, 0.0), std::invalid_argument);
}

}  // namespace
}  // namespace concbench
