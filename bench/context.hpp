#pragma once
#include "bench/harness.hpp"

namespace concbench {

// The machine's own offload costs, measured at start. Later comparisons of offload
// costs are read against these.
struct Calibration {
  double post_ns;               // post a handler to an io_context and run it, same thread
  double thread_rtt_us;         // post to a sleeping event-loop thread, wake the sleeping caller
  double pipe_rtt_us;           // one byte to a sleeping process over a pipe and back
  double process_pool_rtt_us;   // an empty task through the process pool and back
  double sha256_16k_bytes_per_s;  // the cpu_hash kernel on one core, 16 KiB blocks
};

Calibration calibrate(Runtimes& runtimes);

// Adds the environment, versions and calibration to Google Benchmark's context.
void add_context(const Options& options, const Calibration* calibration);

}  // namespace concbench
