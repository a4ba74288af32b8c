// thread_pool: oneTBB's parallel_reduce over the tasks, one TBB task per cpu_hash
// task (simple_partitioner with grain 1 over task indices keeps them that size).
#include "workloads/cpu_hash/cpu_hash.hpp"

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_reduce.h>
#include <oneapi/tbb/partitioner.h>

namespace concbench::cpu_hash {

Checksum run_thread_pool(ThreadPool& pool, const Params& p) {
  return pool.run([&p] {
    return tbb::parallel_reduce(
        tbb::blocked_range<std::uint64_t>(0, task_count(p), 1), Checksum{},
        [&p](const tbb::blocked_range<std::uint64_t>& tasks, Checksum sum) {
          for (std::uint64_t t = tasks.begin(); t != tasks.end(); ++t)
            sum += hash_range(p.block_bytes, task_first(p, t), task_size(p, t));
          return sum;
        },
        std::plus<>{}, tbb::simple_partitioner{});
  });
}

}  // namespace concbench::cpu_hash
