// fibers: every request is a fiber on the one round_robin thread. A blocking call in
// a fiber stalls the whole thread just as on the event loop; offloaded, the fiber
// waits on a fiber-aware future (fiber_offload, or a promise the process pool
// fulfils) and only that fiber suspends.
#include "workloads/blocking_stall/blocking_stall.hpp"

#include "models/offload.hpp"

#include <boost/fiber/fiber.hpp>
#include <boost/fiber/future.hpp>
#include <boost/fiber/operations.hpp>

namespace concbench::blocking_stall {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::optional<std::uint64_t> heavy_in_fiber(Runtimes& runtimes, const Params& p, std::uint64_t id, Measurements& m) {
  if (p.offload == Offload::inline_call) {
    const Timed call = heavy_inline(p, id);
    m.stall.record(call.took);
    return call.value;
  }
  if (p.offload == Offload::threads)
    return fiber_offload(runtimes.thread_pool, [&p, id] { return heavy_work(p.kind, p.work_us, p.cpu_bytes, id); })
        .get();
  auto reply = std::make_shared<boost::fibers::promise<std::optional<std::uint64_t>>>();
  auto result = reply->get_future();
  runtimes.process_pool.submit(heavy_task, heavy_message(p, id), [reply](TaskResult r) {
    reply->set_value(r.ok() ? std::optional(heavy_reply(r.data)) : std::nullopt);
  });
  return result.get();
}

}  // namespace

Outcome run_fibers(Runtimes& runtimes, const Params& p, Measurements& m) {
  return runtimes.fibers.run([&] {
    const std::vector<Request> requests = schedule(p);
    const auto start = Clock::now();
    Outcome outcome;
    bool finished = false;
    boost::fibers::fiber ticker([&] {
      for (auto tick = start + 1ms; !finished; tick += 1ms) {
        boost::this_fiber::sleep_until(tick);
        m.lag.record(Clock::now() - tick);
      }
    });
    std::vector<boost::fibers::fiber> serving;
    serving.reserve(requests.size());
    for (const Request& r : requests) {
      boost::this_fiber::sleep_until(start + r.arrival);
      serving.emplace_back([&, r] {
        std::optional<std::uint64_t> result;
        try {
          result = r.heavy ? heavy_in_fiber(runtimes, p, r.id, m) : light_work(r.id);
        } catch (const std::exception&) {
          result.reset();  // counted as failed
        }
        finish(r, start, result, outcome, m);
      });
    }
    for (auto& f : serving) f.join();
    finished = true;
    ticker.join();
    return outcome;
  });
}

}  // namespace concbench::blocking_stall
