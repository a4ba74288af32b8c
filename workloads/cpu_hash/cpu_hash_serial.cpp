// serial: the tasks one after another on the calling thread: the baseline every
// speed-up is measured against.
#include "workloads/cpu_hash/cpu_hash.hpp"

namespace concbench::cpu_hash {

Checksum run_serial(const Params& p) {
  Checksum total;
  for (std::uint64_t t = 0; t < task_count(p); ++t)
    total += hash_range(p.block_bytes, task_first(p, t), task_size(p, t));
  return total;
}

}  // namespace concbench::cpu_hash
