// fibers and fibers_mt: a parent fiber starts one fiber per task and waits on their
// futures. On the round_robin pool they all share one thread; on the work_stealing
// pool they spread over its threads, which steal from each other.
#include "workloads/cpu_hash/cpu_hash.hpp"

namespace concbench::cpu_hash {

Checksum run_fibers(FiberPool& pool, const Params& p) {
  return pool.run([&pool, &p] {
    std::vector<boost::fibers::future<Checksum>> parts;
    parts.reserve(task_count(p));
    for (std::uint64_t t = 0; t < task_count(p); ++t)
      parts.push_back(pool.submit([&p, t] { return hash_range(p.block_bytes, task_first(p, t), task_size(p, t)); }));
    Checksum total;
    for (auto& part : parts) total += part.get();
    return total;
  });
}

}  // namespace concbench::cpu_hash
