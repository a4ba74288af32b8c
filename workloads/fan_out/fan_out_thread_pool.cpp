// thread_pool: blocking sockets, one request per task. On the oneTBB pool at most
// --workers requests are in flight whatever K allows (its threads block in the
// kernel instead of computing): the cost of doing blocking I/O on a CPU pool, made
// visible. With one thread per in-flight request (K threads) it is the classic
// thread-per-connection client; its price is a thread's stack and wake-ups.
#include "workloads/fan_out/fan_out.hpp"

#include "workloads/fan_out/fan_out_http.hpp"

#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/parallel_for.h>

#include <semaphore>
#include <thread>

namespace concbench::fan_out {

Outcome run_thread_pool(ThreadPool& pool, const Target& target, const Expected& e, Measurements& m) {
  BlockingRun run(target, e, m);
  // K below the pool's size still caps the requests in flight.
  std::counting_semaphore<> permits(e.p.k);
  // One keep-alive connection per pool thread, created on its first request.
  tbb::enumerable_thread_specific<BlockingConnection*> connections(nullptr);
  pool.run([&] {
    tbb::parallel_for(std::uint64_t{0}, e.p.n, [&](std::uint64_t id) {
      BlockingConnection*& connection = connections.local();
      if (!connection) connection = &run.connection();
      permits.acquire();
      run.fetch(*connection, id);
      permits.release();
    });
  });
  return run.finish();
}

Outcome run_thread_per_request(const Target& target, const Expected& e, Measurements& m) {
  BlockingRun run(target, e, m);
  std::atomic<std::uint64_t> next{0};
  std::vector<std::jthread> threads;
  const std::uint64_t count = std::min<std::uint64_t>(e.p.k, e.p.n);
  threads.reserve(count);
  for (std::uint64_t t = 0; t < count; ++t)
    threads.emplace_back([&] {
      BlockingConnection& connection = run.connection();
      for (std::uint64_t id = next++; id < e.p.n; id = next++) run.fetch(connection, id);
    });
  threads.clear();  // joins
  return run.finish();
}

}  // namespace concbench::fan_out
