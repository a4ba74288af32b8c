#pragma once
// How long threads waited for a CPU while they were ready to run, and how often the
// kernel took a CPU away from them, from Linux's per-thread accounting
// (/proc/self/task/TID/schedstat and .../status).
//
// A latency that no code path explains shows here. On two cores, an offloaded
// computation can still delay an event loop: the loop thread is ready, but the
// thread or process that does the offloaded work holds its CPU. Reading the loop
// thread's run-queue wait before and after a run tells that apart from the cost of
// the offload itself.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace concbench {

struct SchedStats {
  std::chrono::nanoseconds runq_wait{0};   // ready to run, waiting for a CPU
  std::uint64_t involuntary_switches = 0;  // taken off a CPU while still ready to run
};

// The calling thread's id as the kernel knows it (gettid), cached per thread.
pid_t this_thread_tid();

// Adds the calling thread to `tids` (a small set) unless it is there already.
void note_this_thread(std::vector<pid_t>& tids);

// The accounting of every thread of this process at one moment.
class SchedSnapshot {
 public:
  static SchedSnapshot take();

  // What the threads `tids` accumulated from `before` to this snapshot; a thread
  // started in between counts from zero. nullopt where the kernel keeps no such
  // accounting (no CONFIG_SCHED_INFO) or one of them was not found.
  std::optional<SchedStats> since(const SchedSnapshot& before, const std::vector<pid_t>& tids) const;

 private:
  std::map<pid_t, SchedStats> threads_;
};

}  // namespace concbench
