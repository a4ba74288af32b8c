// process_pool: each task goes to a worker process. ship:seed sends three numbers
// and the worker reads its own copy of the corpus; ship:bytes copies the task's
// blocks into the message, as real data would travel. Up to kTasksPerWorker tasks
// per worker are in flight: up to four at each worker (so that it can send its
// replies in batches, see process_pool.hpp) and the rest in the pool's queue, so
// that a worker's queue refills as soon as its replies arrive.
#include "workloads/cpu_hash/cpu_hash.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace concbench::cpu_hash {

namespace {

constexpr std::uint64_t kTasksPerWorker = 8;
// With ship:bytes the bytes in flight are bounded too: on the 2-core VM, 8 MiB of
// 1 MiB messages per worker ran a third slower than 4 MiB.
constexpr std::uint64_t kShippedBytesPerWorker = 4 << 20;

std::uint64_t tasks_per_worker(const Params& p) {
  if (p.ship != Ship::bytes) return kTasksPerWorker;
  return std::clamp<std::uint64_t>(kShippedBytesPerWorker / (p.block_bytes * p.grain), 2, kTasksPerWorker);
}

struct TaskHeader {
  std::uint64_t block_bytes;
  std::uint64_t first;
  std::uint64_t count;
};

template <class T>
T read_as(std::span<const std::byte> bytes) {
  if (bytes.size() < sizeof(T)) throw std::invalid_argument("cpu_hash: short task message");
  T value;
  std::memcpy(&value, bytes.data(), sizeof value);
  return value;
}

Bytes to_bytes(const Checksum& sum) {
  Bytes out(sizeof sum);
  std::memcpy(out.data(), &sum, sizeof sum);
  return out;
}

// Runs in the worker: hash blocks [first, first + count) of its own corpus.
Bytes hash_seeded(std::span<const std::byte> payload) {
  auto h = read_as<TaskHeader>(payload);
  return to_bytes(hash_range(h.block_bytes, h.first, h.count));
}

// Runs in the worker: hash `count` blocks that follow the header.
Bytes hash_shipped(std::span<const std::byte> payload) {
  auto h = read_as<TaskHeader>(payload);
  auto data = payload.subspan(sizeof h);
  if (data.size() != h.block_bytes * h.count) throw std::invalid_argument("cpu_hash: task size mismatch");
  Checksum sum;
  for (std::uint64_t i = 0; i < h.count; ++i) sum += hash_block(data.subspan(i * h.block_bytes, h.block_bytes));
  return to_bytes(sum);
}

Bytes task_message(const Params& p, std::uint64_t t) {
  TaskHeader h{p.block_bytes, task_first(p, t), task_size(p, t)};
  Bytes out(sizeof h + (p.ship == Ship::bytes ? h.block_bytes * h.count : 0));
  std::memcpy(out.data(), &h, sizeof h);
  if (p.ship == Ship::bytes)
    for (std::uint64_t i = 0; i < h.count; ++i)
      std::memcpy(out.data() + sizeof h + i * h.block_bytes, block(p.block_bytes, h.first + i).data(), h.block_bytes);
  return out;
}

}  // namespace

Checksum run_process_pool(ProcessPool& pool, const Params& p) {
  if (p.ship == Ship::none) throw std::invalid_argument("cpu_hash: process_pool needs ship:bytes or ship:seed");
  const std::uint64_t tasks = task_count(p);
  const std::uint64_t window = tasks_per_worker(p) * pool.workers();
  std::mutex mutex;
  std::condition_variable drained;
  std::uint64_t submitted = 0, completed = 0;  // under mutex
  Checksum total;
  std::string first_error;

  auto complete = [&](TaskResult result) {
    std::lock_guard lock(mutex);
    if (!result.ok() || result.data.size() != sizeof(Checksum)) {
      if (first_error.empty()) first_error = result.ok() ? "malformed reply" : result.error;
    } else {
      total += read_as<Checksum>(result.data);
    }
    ++completed;
    if (submitted - completed <= window / 2 || !first_error.empty()) drained.notify_one();
  };

  // This thread tops the window up once it has drained to half: it wakes once per
  // half window rather than once per task (with a core per worker, each wake-up
  // takes a worker's core), and it builds the messages, with ship:bytes a copy of
  // the blocks, beside the pool's I/O thread rather than on it.
  std::unique_lock lock(mutex);
  while (submitted < tasks && first_error.empty()) {
    drained.wait(lock, [&] { return submitted - completed <= window / 2 || !first_error.empty(); });
    const std::uint64_t until = std::min(tasks, completed + window);
    lock.unlock();
    try {
      for (std::uint64_t t = submitted; t < until; ++t) {
        pool.submit(p.ship == Ship::bytes ? hash_shipped : hash_seeded, task_message(p, t), complete);
        std::lock_guard count(mutex);  // `complete` reads it
        submitted = t + 1;
      }
    } catch (const std::exception& e) {
      lock.lock();
      if (first_error.empty()) first_error = std::string("cannot submit a task: ") + e.what();
      break;
    }
    lock.lock();
  }
  // The completions of the tasks submitted use the locals above.
  drained.wait(lock, [&] { return completed == submitted; });
  if (!first_error.empty()) throw ProcessTaskError("cpu_hash on process_pool: " + first_error);
  return total;
}

}  // namespace concbench::cpu_hash
