#include "workloads/cpu_hash/cpu_hash.hpp"

#include "models/test_main.hpp"

#include <gtest/gtest.h>

#include <openssl/sha.h>

#include <signal.h>

#include <chrono>
#include <cstring>
#include <future>
#include <thread>

namespace concbench::cpu_hash {
namespace {

std::vector<Params> with_ships(Model model, Params p) {
  if (model != Model::process_pool) return {p};
  Params bytes = p, seed = p;
  bytes.ship = Ship::bytes;
  seed.ship = Ship::seed;
  return {bytes, seed};
}

std::string describe(Model model, const Params& p) {
  return std::string(model_name(model)) + " block_bytes=" + std::to_string(p.block_bytes) +
         " grain=" + std::to_string(p.grain) + " items=" + std::to_string(p.items) + " ship=" +
         std::string(ship_name(p.ship));
}

TEST(CpuHash, KernelIsSha256) {
  // FIPS 180-2 test vector: SHA-256("abc").
  const char abc[] = "abc";
  Checksum sum = hash_block(std::as_bytes(std::span(abc, 3)));
  const unsigned char expected[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                      0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                      0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
  EXPECT_EQ(std::memcmp(sum.digest_sum.data(), expected, 32), 0);
  EXPECT_EQ(sum.items, 1u);
}

TEST(CpuHash, ChecksumCatchesLostAndDoubledBlocks) {
  Checksum all = hash_range(100, 0, 10);
  EXPECT_EQ(all, hash_range(100, 5, 5) + hash_range(100, 0, 5));  // order does not matter
  EXPECT_NE(all, hash_range(100, 0, 9));                           // one lost
  EXPECT_NE(all, hash_range(100, 0, 10) + hash_range(100, 3, 1));  // one doubled
  Checksum swapped = hash_range(100, 0, 9) + hash_range(100, 11, 1);
  EXPECT_NE(all, swapped);  // a wrong block, same count
}

TEST(CpuHash, BlocksAreDistinctAndDeterministic) {
  EXPECT_NE(hash_range(64, 0, 1), hash_range(64, 1, 1));
  auto a = block(1000, 7), b = block(1000, 7);
  EXPECT_EQ(a.data(), b.data());
  EXPECT_EQ(block(kMaxBlockBytes, 123).size(), kMaxBlockBytes);
  EXPECT_THROW(block(kMaxBlockBytes + 1, 0), std::invalid_argument);
}

TEST(CpuHash, TasksCoverEveryItemOnce) {
  Params p{64, 3, 10};
  EXPECT_EQ(task_count(p), 4u);
  std::uint64_t covered = 0;
  for (std::uint64_t t = 0; t < task_count(p); ++t) {
    EXPECT_EQ(task_first(p, t), covered);
    covered += task_size(p, t);
  }
  EXPECT_EQ(covered, 10u);
}

// Edge shapes: no items, one item, grain above items, a block size that is not a
// multiple of 64, many tiny blocks, and the largest block.
const Params kEdgeShapes[] = {
    {64, 4, 0}, {64, 1, 1}, {1000, 50, 7}, {100, 3, 10}, {1, 64, 5000}, {kMaxBlockBytes, 1, 3}, {65, 7, 100},
};

class EveryModel : public testing::TestWithParam<Model> {};

TEST_P(EveryModel, MatchesTheReferenceOnEdgeShapes) {
  const Model model = GetParam();
  for (const Params& shape : kEdgeShapes)
    for (const Params& p : with_ships(model, shape)) {
      Checksum got = run(model, test_runtimes(), p);
      EXPECT_EQ(got, reference(p)) << describe(model, p) << ": got " << to_string(got);
      EXPECT_EQ(got.items, p.items) << describe(model, p);
    }
}

TEST_P(EveryModel, MatchesTheReferenceOnTheQuickSuite) {
  const Model model = GetParam();
  for (Params p : parameter_sets(Suite::quick, model)) {
    p.items = std::min<std::uint64_t>(p.items, 4 * p.grain + 1);  // same shapes, less time
    EXPECT_EQ(run(model, test_runtimes(), p), reference(p)) << describe(model, p);
  }
}

INSTANTIATE_TEST_SUITE_P(CpuHash, EveryModel, testing::ValuesIn(kModels),
                         [](const auto& info) { return std::string(model_name(info.param)); });

TEST(CpuHash, ProcessPoolNeedsAShipMode) {
  EXPECT_THROW(run_process_pool(test_runtimes().process_pool, {64, 1, 1, Ship::none}), std::invalid_argument);
}

// A worker killed in a task fails the run with an error naming it: the tasks not
// yet sent are dropped, those in flight finish, and nothing waits for ever. One
// killed between tasks fails nothing, and its tasks, held back or never started,
// run again on the replacement. Which of the two happens is up to the scheduler, so
// either passes, but nothing may be lost or counted twice.
TEST(CpuHash, ProcessPoolRunSurvivesOrNamesAWorkerThatDies) {
  auto& pool = test_runtimes().process_pool;
  const unsigned replaced_before = pool.replacements();
  const Params p{65536, 1, 8192, Ship::seed};  // 512 MiB in 64 KiB tasks: far longer than the 50 ms below
  auto running = std::async(std::launch::async, [&] { return run_process_pool(pool, p); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const pid_t victim = pool.worker_pids().front();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  ASSERT_EQ(running.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "the run hangs";
  try {
    EXPECT_EQ(running.get(), reference(p)) << "a task was lost or counted twice";
  } catch (const ProcessTaskError& e) {
    EXPECT_NE(std::string(e.what()).find("worker process " + std::to_string(victim) + " was killed by signal 9"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(pool.replacements(), replaced_before + 1);
  // The pool still works, on a replacement.
  const Params small{1024, 4, 100, Ship::seed};
  EXPECT_EQ(run_process_pool(pool, small), reference(small));
}

TEST(CpuHash, ParameterSetsKeepTasksAndRunsInRange) {
  for (Suite suite : {Suite::quick, Suite::standard, Suite::full})
    for (Model model : kModels)
      for (const Params& p : parameter_sets(suite, model)) {
        EXPECT_GE(p.block_bytes, 64u);
        EXPECT_LE(p.block_bytes, kMaxBlockBytes);
        EXPECT_GE(p.grain, 1u);
        EXPECT_LE(p.grain * p.block_bytes, std::uint64_t{1} << 20) << "tasks of about 1 ms at most";
        EXPECT_LE(p.grain, 4096u) << "tiny blocks: about 1 ms at most";
        EXPECT_GE(p.items, p.grain);
        EXPECT_EQ(p.ship == Ship::none, model != Model::process_pool);
      }
  // Eight block sizes, two task sizes, which coincide at 1 MiB blocks.
  EXPECT_EQ(parameter_sets(Suite::standard, Model::serial).size(), 15u);
  EXPECT_EQ(parameter_sets(Suite::standard, Model::process_pool).size(), 30u);
}

}  // namespace
}  // namespace concbench::cpu_hash
