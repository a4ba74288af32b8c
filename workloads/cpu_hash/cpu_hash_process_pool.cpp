// process_pool: each task goes to a worker process. ship:seed sends three numbers
// and the worker reads its own copy of the corpus; ship:bytes copies the task's
// blocks into the message, as real data would travel. kTasksPerWorker tasks per
// worker are in flight: two queued at each worker and the rest in the pool's
// queue, so that a worker's queue refills as soon as a reply arrives. The limit
// bounds the bytes in flight.
#include "workloads/cpu_hash/cpu_hash.hpp"

#include <atomic>
#include <cstring>
#include <latch>
#include <mutex>
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
  std::latch finished(static_cast<std::ptrdiff_t>(tasks));
  std::atomic<std::uint64_t> next{0};  // the next task to submit
  std::mutex mutex;
  Checksum total;
  std::string first_error;
  auto fail = [&](std::string error) {
    std::lock_guard lock(mutex);
    if (first_error.empty()) first_error = std::move(error);
  };
  // After a failure no more tasks go out: those not yet taken count as done.
  auto abandon_rest = [&] {
    const std::uint64_t taken = std::min(tasks, next.exchange(tasks));
    finished.count_down(static_cast<std::ptrdiff_t>(tasks - taken));
  };

  // Submits the next task, if any; its completion, on the pool's I/O thread,
  // submits (and, with ship:bytes, copies) the one after. So the window stays full
  // without this thread waking once per task: with a core per worker, each such
  // wake-up would take a worker's core.
  auto submit_next = [&](auto& self) -> void {
    const std::uint64_t t = next++;
    if (t >= tasks) return;
    try {
      pool.submit(p.ship == Ship::bytes ? hash_shipped : hash_seeded, task_message(p, t),
                  [&, self](TaskResult result) {
                    if (!result.ok() || result.data.size() != sizeof(Checksum)) {
                      fail(result.ok() ? "malformed reply" : result.error);
                      abandon_rest();
                    } else {
                      {
                        std::lock_guard lock(mutex);
                        total += read_as<Checksum>(result.data);
                      }
                      self(self);
                    }
                    finished.count_down();
                  });
    } catch (const std::exception& e) {
      fail(std::string("cannot submit a task: ") + e.what());
      abandon_rest();
      finished.count_down();  // task t
    }
  };
  for (std::ptrdiff_t i = 0; i < kTasksPerWorker * static_cast<std::ptrdiff_t>(pool.workers()); ++i)
    submit_next(submit_next);
  finished.wait();
  if (!first_error.empty()) throw ProcessTaskError("cpu_hash on process_pool: " + first_error);
  return total;
}

}  // namespace concbench::cpu_hash
