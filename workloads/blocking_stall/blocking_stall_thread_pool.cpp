// thread_pool: every request is a task on the oneTBB pool, posted at its arrival by
// the calling thread. Inline, a heavy call occupies a pool thread, and with few
// threads light requests queue behind it: the pool's own kind of stall. Offloaded
// to processes, the task only submits; the reply completes the request on the
// process pool's I/O thread. The ticker is a task posted every 1 ms: its lag is how
// long a task waits for a free pool thread.
#include "workloads/blocking_stall/blocking_stall.hpp"

#include <latch>
#include <mutex>
#include <thread>

namespace concbench::blocking_stall {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

Outcome run_thread_pool(Runtimes& runtimes, const Params& p, Measurements& m) {
  const std::vector<Request> requests = schedule(p);
  const std::int64_t ticks = p.duration / 1ms;
  const auto start = Clock::now();
  std::mutex mutex;  // guards outcome and m
  Outcome outcome;
  std::latch done(static_cast<std::ptrdiff_t>(requests.size() + ticks));

  auto complete = [&](const Request& r, std::optional<std::uint64_t> result,
                      std::optional<std::chrono::nanoseconds> stall = std::nullopt) {
    {
      std::lock_guard lock(mutex);
      if (stall) m.stall.record(*stall);
      finish(r, start, result, outcome, m);
    }
    done.count_down();
  };
  auto serve = [&](const Request& r) {
    try {
      if (!r.heavy) return complete(r, light_work(r.id));
      if (p.offload == Offload::inline_call) {
        const Timed call = heavy_inline(p, r.id);
        return complete(r, call.value, call.took);
      }
      runtimes.process_pool.submit(heavy_task, heavy_message(p, r.id), [&complete, r](TaskResult result) {
        std::optional<std::uint64_t> value;
        try {
          if (result.ok()) value = heavy_reply(result.data);
        } catch (const std::exception&) {
        }
        complete(r, value);
      });
    } catch (const std::exception&) {
      complete(r, std::nullopt);
    }
  };

  // Arrivals and ticks in time order.
  std::size_t next = 0;
  for (std::int64_t tick = 1; tick <= ticks || next < requests.size();) {
    const auto tick_at = start + tick * 1ms;
    if (next < requests.size() && (tick > ticks || start + requests[next].arrival <= tick_at)) {
      const Request& r = requests[next++];
      std::this_thread::sleep_until(start + r.arrival);
      runtimes.thread_pool.post([&serve, r] { serve(r); });
    } else {
      std::this_thread::sleep_until(tick_at);
      runtimes.thread_pool.post([&, tick_at] {
        {
          std::lock_guard lock(mutex);
          m.lag.record(Clock::now() - tick_at);
        }
        done.count_down();
      });
      ++tick;
    }
  }
  done.wait();
  return outcome;
}

}  // namespace concbench::blocking_stall
