#pragma once
// cpu_hash: CPU-bound SHA-256 (OpenSSL EVP) over `items` blocks of `block_bytes`
// synthetic bytes, cut into tasks of `grain` blocks.
//
// It stresses nothing but the CPU and the cost of handing tasks out, so it answers
// the first design question: how much of N cores does each model turn into
// throughput, and what does a task hand-off cost at each task size? Small blocks
// make the per-task overhead visible; large ones show pure parallel scaling. The
// process pool runs it twice: shipping the block bytes to the workers (the
// realistic, data-heavy offload) and shipping only the block indices (workers read
// their own copy of the input: compute-only); the gap is the cost of moving data
// between processes.
//
// The input is a fixed pseudo-random corpus; block i starts at a fixed offset
// derived from i, so every process can produce the same bytes without receiving
// them. The result is an order-independent checksum of every digest plus the item
// count: a lost or doubled block changes it.
#include "models/runtimes.hpp"
#include "workloads/suite.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace concbench::cpu_hash {

enum class Ship { none, bytes, seed };  // how process_pool tasks get their input
std::string_view ship_name(Ship ship);

struct Params {
  std::size_t block_bytes;
  std::uint64_t grain;  // blocks per task
  std::uint64_t items;  // blocks per run
  Ship ship = Ship::none;
  auto operator<=>(const Params&) const = default;
};

struct Checksum {
  std::array<std::uint64_t, 4> digest_sum{};  // SHA-256 digests summed as four 64-bit lanes
  std::uint64_t items = 0;

  Checksum& operator+=(const Checksum& other);
  friend Checksum operator+(Checksum a, const Checksum& b) { return a += b; }
  bool operator==(const Checksum&) const = default;
};
std::string to_string(const Checksum& sum);

inline constexpr std::size_t kMaxBlockBytes = std::size_t{1} << 20;

// The kernel, written once. `block` gives block i's input bytes (valid for the life
// of the process); `hash_block` hashes one; `hash_range` hashes blocks
// [first, first + count) of the corpus. `corpus` is all of it: block i starts at
// (i * 4099) % (corpus size - block_bytes + 1), which is all a peer in another
// language needs to hash the same bytes (peers/README.md).
std::span<const std::byte> corpus();
std::span<const std::byte> block(std::size_t block_bytes, std::uint64_t index);
Checksum hash_block(std::span<const std::byte> bytes);
Checksum hash_range(std::size_t block_bytes, std::uint64_t first, std::uint64_t count);

// Task t covers blocks [t * grain, min(items, (t + 1) * grain)).
std::uint64_t task_count(const Params& p);
std::uint64_t task_first(const Params& p, std::uint64_t task);
std::uint64_t task_size(const Params& p, std::uint64_t task);

// Sequential, in index order: what every model must reproduce exactly.
Checksum reference(const Params& p);

// The parameter sets of one suite, for each model.
std::vector<Params> parameter_sets(Suite suite, Model model);

// One function per model (cpu_hash_<model>.cpp): only where the tasks run differs.
Checksum run_serial(const Params& p);
Checksum run_event_loop(EventLoop& loop, const Params& p);
Checksum run_fibers(FiberPool& pool, const Params& p);  // fibers and fibers_mt
Checksum run_thread_pool(ThreadPool& pool, const Params& p);
Checksum run_process_pool(ProcessPool& pool, const Params& p);

Checksum run(Model model, Runtimes& runtimes, const Params& p);

}  // namespace concbench::cpu_hash
