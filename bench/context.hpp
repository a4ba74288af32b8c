#pragma once
#include "bench/harness.hpp"

#include <optional>

namespace concbench {

// The machine's own offload costs, measured at start. Later comparisons of offload
// costs are read against these.
struct Calibration {
  double post_ns;               // post a handler to an io_context and run it, same thread
  // Round trips as the scheduler places the two sides (often on one core, a
  // hand-over with no core to wake): post to a sleeping event-loop thread and wake
  // the sleeping caller; one byte to a sleeping process over a pipe and back.
  double thread_rtt_us;
  double pipe_rtt_us;
  // The same with the two sides pinned to two cores, each asleep when reached: the
  // cost of waking a sleeping core, tens of us on a virtual machine. 0 on one core.
  double thread_rtt_cross_core_us;
  double pipe_rtt_cross_core_us;
  // The offload mechanisms themselves: an empty task from a coroutine on the event
  // loop to the pool and back, resumed on the loop.
  double thread_pool_rtt_us;
  double process_pool_rtt_us;
  double sha256_16k_bytes_per_s;  // the cpu_hash kernel on one core, 16 KiB blocks
  std::optional<int> process_worker_policy;  // ProcessPool::worker_policy()
};

Calibration calibrate(Runtimes& runtimes);

// Adds the environment, versions and calibration to Google Benchmark's context.
void add_context(const Options& options, const Calibration* calibration);

}  // namespace concbench
