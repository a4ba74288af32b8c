// process_pool: each task goes to a worker process. ship:seed sends three numbers
// and the worker reads its own copy of the corpus; ship:bytes copies the task's
// blocks into the message, as real data would travel. The submitting thread keeps
// kTasksPerWorker tasks per worker in flight: the pool queues two at each worker,
// and two more wait in its queue so that a worker's queue refills without waiting
// for this thread to wake up; the limit bounds the bytes in flight.
#include "workloads/cpu_hash/cpu_hash.hpp"

#include <cstring>
#include <latch>
#include <mutex>
#include <semaphore>
#include <stdexcept>

namespace concbench::cpu_hash {

namespace {

constexpr std::ptrdiff_t kTasksPerWorker = 4;

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
  std::counting_semaphore<> in_flight(kTasksPerWorker * static_cast<std::ptrdiff_t>(pool.workers()));
  std::latch finished(static_cast<std::ptrdiff_t>(tasks));
  std::mutex mutex;
  Checksum total;
  std::string first_error;

  std::uint64_t submitted = 0;
  try {
    for (; submitted < tasks; ++submitted) {
      in_flight.acquire();
      pool.submit(p.ship == Ship::bytes ? hash_shipped : hash_seeded, task_message(p, submitted),
                  [&](TaskResult result) {
                    {
                      std::lock_guard lock(mutex);
                      if (!result.ok() || result.data.size() != sizeof(Checksum))
                        first_error = first_error.empty() ? (result.ok() ? "malformed reply" : result.error)
                                                          : first_error;
                      else
                        total += read_as<Checksum>(result.data);
                    }
                    in_flight.release();
                    finished.count_down();
                  });
    }
  } catch (...) {
    // The completions of the tasks already submitted use the locals above.
    finished.count_down(static_cast<std::ptrdiff_t>(tasks - submitted));
    finished.wait();
    throw;
  }
  finished.wait();
  if (!first_error.empty()) throw ProcessTaskError("cpu_hash on process_pool: " + first_error);
  return total;
}

}  // namespace concbench::cpu_hash
