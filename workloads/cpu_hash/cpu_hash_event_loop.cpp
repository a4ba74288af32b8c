// event_loop: one coroutine hashes the tasks on the loop's thread and yields to the
// loop between them, as a well-behaved async service does with CPU work. One
// thread: it can only match serial, and the yields are its overhead.
#include "workloads/cpu_hash/cpu_hash.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace concbench::cpu_hash {

namespace {
asio::awaitable<Checksum> hash_tasks(Params p) {
  auto executor = co_await asio::this_coro::executor;
  Checksum total;
  for (std::uint64_t t = 0; t < task_count(p); ++t) {
    total += hash_range(p.block_bytes, task_first(p, t), task_size(p, t));
    co_await asio::post(executor, asio::use_awaitable);  // let other coroutines run
  }
  co_return total;
}
}  // namespace

Checksum run_event_loop(EventLoop& loop, const Params& p) { return loop.run(hash_tasks(p)); }

}  // namespace concbench::cpu_hash
