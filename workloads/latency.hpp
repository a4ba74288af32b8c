#pragma once
// Latency samples of one run and their percentiles, for the workloads that measure
// requests or messages. Every sample is kept (runs are bounded in count), so the
// percentiles are exact, not estimated from buckets.
//
// Latency under load is measured open-loop: OpenLoopSchedule fixes each request's
// arrival time in advance, and latency counts from that arrival, not from when
// the system got round to sending it. A stall then shows in every request that
// should have arrived during it (no coordinated omission; see wrk2, HdrHistogram).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace concbench {

struct Percentiles {
  double p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
  std::size_t count = 0;
};

class LatencyRecorder {
 public:
  using Duration = std::chrono::nanoseconds;

  void reserve(std::size_t samples) { samples_.reserve(samples); }
  void record(Duration latency) { samples_.push_back(latency.count()); }
  void merge(const LatencyRecorder& other) {
    samples_.insert(samples_.end(), other.samples_.begin(), other.samples_.end());
  }
  void clear() { samples_.clear(); }
  std::size_t count() const { return samples_.size(); }

  // Nearest rank: the smallest sample with at least fraction q of all samples at or
  // below it. q in (0, 1]; 1 gives the maximum.
  double percentile_us(double q) {
    if (!(q > 0 && q <= 1)) throw std::invalid_argument("percentile: q must be in (0, 1]");
    if (samples_.empty()) return 0;
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(samples_.size())));
    auto nth = samples_.begin() + static_cast<std::ptrdiff_t>(std::max<std::size_t>(rank, 1) - 1);
    std::nth_element(samples_.begin(), nth, samples_.end());
    return static_cast<double>(*nth) / 1000.0;
  }

  Percentiles percentiles() {
    return {percentile_us(0.5), percentile_us(0.9), percentile_us(0.99), percentile_us(0.999), percentile_us(1.0),
            samples_.size()};
  }

 private:
  std::vector<std::int64_t> samples_;  // nanoseconds
};

// Arrivals at a fixed rate from `start`: request i arrives at start + i / rate.
class OpenLoopSchedule {
 public:
  using Clock = std::chrono::steady_clock;

  OpenLoopSchedule(Clock::time_point start, double per_second) : start_(start), per_second_(per_second) {
    if (!(per_second > 0)) throw std::invalid_argument("open-loop schedule: rate must be positive");
  }

  Clock::time_point arrival(std::uint64_t i) const {
    return start_ + std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(static_cast<double>(i) / per_second_));
  }

  // Latency of request i that completed at `done`: from its scheduled arrival.
  LatencyRecorder::Duration latency(std::uint64_t i, Clock::time_point done) const {
    return std::chrono::duration_cast<LatencyRecorder::Duration>(done - arrival(i));
  }

 private:
  Clock::time_point start_;
  double per_second_;
};

}  // namespace concbench
