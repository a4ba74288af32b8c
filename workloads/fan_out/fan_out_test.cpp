#include "workloads/fan_out/fan_out.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/resource.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

namespace concbench::fan_out {
namespace {

TEST(FanOutContract, TheStatedCellsAreInEverySuiteAndInTheContext) {
  // The report reads the stated cells and checks from stated_json(): each must be a cell
  // the default suite runs, and the JSON must name them as the report's reader expects.
  const auto sets = parameter_sets(Suite::standard);
  for (const Params& cell : {kIdealCell, kRateCell}) {
    EXPECT_TRUE(std::any_of(sets.begin(), sets.end(), [&](const Params& p) {
      return is_stated(p) && p.k == cell.k && p.delay_us == cell.delay_us;
    }));
  }
  EXPECT_EQ(std::count_if(sets.begin(), sets.end(), is_stated), 2);
  const std::string json = stated_json();
  EXPECT_NE(json.find("\"ideal\": {\"group\": \"settled\", \"n\": 10000, \"k\": 100, \"delay_us\": 10000"),
            std::string::npos);
  EXPECT_NE(json.find("\"rate\": {\"group\": \"settled\", \"n\": 10000, \"k\": 100, \"delay_us\": 0"),
            std::string::npos);
  EXPECT_NE(json.find("\"event_loop_vs_wrk\": {\"series\": \"event_loop\", \"figure\": \"rate_vs_wrk\", "
                      "\"limit\": 0.9, \"at_most\": false}"), std::string::npos);
}

TEST(FanOutContract, TargetRoundTrips) {
  const WorkQuery q{1500, 65536, 0.01, 42};
  EXPECT_EQ(work_target(q), "/work?delay_us=1500&bytes=65536&fail=0.01&id=42");
  EXPECT_EQ(parse_work_target(work_target(q)), q);
  EXPECT_EQ(parse_work_target("/work"), WorkQuery{});
  EXPECT_EQ(parse_work_target("/work?id=7"), (WorkQuery{0, 0, 0, 7}));
}

TEST(FanOutContract, MalformedTargetsAreRejected) {
  for (const char* bad : {"/", "/workx", "/work/", "work?id=1", "/work?id", "/work?id=", "/work?id=-1",
                          "/work?id=1x", "/work?id=1&id=2", "/work?color=red", "/work?fail=1.5", "/work?fail=nan",
                          "/work?fail=-0.1", "/work?delay_us=60000001", "/work?bytes=67108865",
                          "/work?id=99999999999999999999", "/work?&", "/work?id=1&"})
    EXPECT_FALSE(parse_work_target(bad)) << bad;
}

TEST(FanOutContract, FailureDrawIsFixedAndNearItsProbability) {
  int failures = 0;
  for (std::uint64_t id = 0; id < 100000; ++id) {
    failures += draws_failure(id, 0.01);
    EXPECT_EQ(draws_failure(id, 0.01), draws_failure(id, 0.01));
    ASSERT_FALSE(draws_failure(id, 0));
    ASSERT_TRUE(draws_failure(id, 1));
  }
  EXPECT_NEAR(failures, 1000, 150);  // about 5 standard deviations
}

TEST(FanOutContract, ChecksumCatchesAChangedMovedOrMissingByte) {
  std::string body(1003, '\0');
  fill_body(9, body);
  const std::uint64_t good = body_checksum(body);
  std::string other(1003, '\0');
  fill_body(10, other);
  EXPECT_NE(body_checksum(other), good);  // another id's body

  std::string changed = body;
  changed[500] ^= 1;
  EXPECT_NE(body_checksum(changed), good);
  std::string swapped = body;
  std::swap_ranges(swapped.begin(), swapped.begin() + 8, swapped.begin() + 8);
  EXPECT_NE(body_checksum(swapped), good);
  EXPECT_NE(body_checksum(std::string_view(body).substr(0, 1002)), good);
  EXPECT_NE(body_checksum(std::string_view(body).substr(1)), good);
}

Params params(Group group, double fail) { return {50, 4, 0, 64, fail, group}; }

// The reference with every id ending once as `ending_of` says.
Outcome tally_of(const Expected& e, auto ending_of) {
  Tally tally;
  for (std::uint64_t id = 0; id < e.p.n; ++id) {
    const Ending ending = ending_of(id);
    tally.end(id, ending, ending == Ending::ok ? e.body_checksums[id] : 0);
  }
  return tally.outcome();
}

TEST(FanOutExpected, NoRequestInFlightIsRefused) {
  Params p = params(Group::settled, 0);
  p.k = 0;
  EXPECT_THROW(reference(p), std::invalid_argument);
}

TEST(FanOutExpected, SettledMustMatchExactly) {
  const Expected e = reference(params(Group::settled, 0.2));
  ASSERT_GT(e.settled.failed, 0u);
  EXPECT_EQ(e.settled.total(), 50u);
  auto as_drawn = [&](std::uint64_t id) { return draws_failure(id, 0.2) ? Ending::failed : Ending::ok; };
  EXPECT_TRUE(matches(tally_of(e, as_drawn), e));
  // One ok request counted as cancelled, or one id ending twice, is wrong.
  EXPECT_FALSE(matches(tally_of(e, [&](std::uint64_t id) { return id == 3 && !draws_failure(3, 0.2) ? Ending::cancelled : as_drawn(id); }), e));
  Tally doubled;
  for (std::uint64_t id = 0; id < 50; ++id) {
    const std::uint64_t counted = id == 7 ? 8 : id;  // 7 lost, 8 twice
    const Ending ending = as_drawn(counted);
    doubled.end(counted, ending, ending == Ending::ok ? e.body_checksums[counted] : 0);
  }
  EXPECT_FALSE(matches(doubled.outcome(), e));
}

TEST(FanOutExpected, FailFastAllowsAnyStoppedSubsetButNoLostId) {
  const Expected e = reference(params(Group::all, 0.2));
  std::uint64_t first_failure = 0;
  while (!draws_failure(first_failure, 0.2)) ++first_failure;
  // Everything after the first failure cancelled: a valid fail-fast run.
  auto fail_fast = [&](std::uint64_t id) {
    return id < first_failure ? Ending::ok : id == first_failure ? Ending::failed : Ending::cancelled;
  };
  EXPECT_TRUE(matches(tally_of(e, fail_fast), e));
  // No failure at all although one was drawn, or a timeout, is not.
  EXPECT_FALSE(matches(tally_of(e, [](std::uint64_t) { return Ending::cancelled; }), e));
  EXPECT_FALSE(matches(tally_of(e, [&](std::uint64_t id) { return id == 0 ? Ending::timed_out : fail_fast(id); }), e));
  // Without failures drawn, group:all must end like settled.
  const Expected clean = reference(params(Group::all, 0));
  EXPECT_FALSE(matches(tally_of(clean, [](std::uint64_t id) { return id ? Ending::ok : Ending::cancelled; }), clean));
  EXPECT_TRUE(matches(tally_of(clean, [](std::uint64_t) { return Ending::ok; }), clean));
}

TEST(FanOutExpected, ResponsesAreChecked) {
  const Expected e = reference(params(Group::settled, 0.2));
  std::uint64_t good = 0, bad = 0;
  while (draws_failure(good, 0.2)) ++good;
  while (!draws_failure(bad, 0.2)) ++bad;
  std::string body(64, '\0');
  fill_body(good, body);
  Tally tally;
  record_response(tally, e, good, 200, body);
  record_response(tally, e, bad, 500, "");
  EXPECT_EQ(tally.outcome().ok, 1u);
  EXPECT_EQ(tally.outcome().failed, 1u);
  EXPECT_THROW(record_response(tally, e, good, 500, ""), std::runtime_error);
  EXPECT_THROW(record_response(tally, e, bad, 200, body), std::runtime_error);
  EXPECT_THROW(record_response(tally, e, good, 200, body.substr(1)), std::runtime_error);
  fill_body(good + 1, body);
  EXPECT_THROW(record_response(tally, e, good, 200, body), std::runtime_error);
  EXPECT_THROW(record_response(tally, e, 50, 200, body), std::runtime_error);
  EXPECT_EQ(tally.outcome().total(), 2u);
}

// The size of this process's descriptor table, as the kernel reports it.
long descriptor_table_size() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("FDSize:", 0) == 0) return std::stol(line.substr(7));
  return -1;
}

TEST(FanOutDescriptors, ReservingGrowsTheTableAndLeavesNothingOpen) {
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  const long wanted = static_cast<long>(std::min<rlim_t>(kReservedDescriptors, limit.rlim_cur));
  // The descriptors it opens are /dev/null's (other threads of the test may open
  // others meanwhile).
  const auto open_on_dev_null = [] {
    int n = 0;
    for (const auto& fd : std::filesystem::directory_iterator("/proc/self/fd")) {
      std::error_code ec;
      n += std::filesystem::read_symlink(fd.path(), ec) == "/dev/null";
    }
    return n;
  };
  const int before = open_on_dev_null();
  for (int round = 0; round < 2; ++round) {  // again: nothing changes
    reserve_descriptors();
    EXPECT_GE(descriptor_table_size(), wanted);
    EXPECT_EQ(open_on_dev_null(), before);
    EXPECT_EQ(fcntl(static_cast<int>(wanted) - 1, F_GETFD), -1);
  }
}

}  // namespace
}  // namespace concbench::fan_out
