#pragma once
// fibers and fibers_mt: Boost.Fiber user-space threads. `round_robin` keeps every
// fiber on one thread (like an event loop, but with stackful fibers instead of
// coroutines); `work_stealing` spreads them over N threads, Go-style M:N.
//
// Boost.Fiber's work_stealing keeps its schedulers in static state: it can be
// sized once per process only, so a work-stealing FiberPool is created once, in
// main(), and lives until exit.
//
// With suspend=true (idle threads sleep instead of spinning) work_stealing wakes a
// sleeping thread only when one of *its* fibers becomes ready: a fiber created
// with a plain boost::fibers::fiber stays on its creator's thread unless an awake
// thread steals it. So work is started through `post`/`submit`: each job crosses
// the pool's channel, which wakes a waiting thread to take it, and from there
// awake threads steal from each other.
#include <boost/fiber/buffered_channel.hpp>
#include <boost/fiber/future.hpp>

#include <functional>
#include <future>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

namespace concbench {

enum class FiberScheduler { round_robin, work_stealing };

class FiberPool {
 public:
  FiberPool(FiberScheduler scheduler, unsigned threads);
  ~FiberPool();  // closes the job channel and joins the threads
  FiberPool(const FiberPool&) = delete;
  FiberPool& operator=(const FiberPool&) = delete;

  unsigned threads() const { return static_cast<unsigned>(threads_.size()); }

  // Starts `job` as a new fiber on one of the pool's threads. From a fiber it
  // suspends only that fiber while the channel is full.
  void post(std::function<void()> job);

  // Like post, with the result in a fiber-aware future (get() suspends a fiber).
  template <class F>
  boost::fibers::future<std::invoke_result_t<F>> submit(F f) {
    auto task = std::make_shared<boost::fibers::packaged_task<std::invoke_result_t<F>()>>(std::move(f));
    auto result = task->get_future();
    post([task] { (*task)(); });
    return result;
  }

  // Runs `f` in a new fiber on the pool; the calling thread (never a pool thread)
  // blocks until it returns and gets its result or its exception.
  template <class F>
  std::invoke_result_t<F> run(F f) {
    auto task = std::make_shared<std::packaged_task<std::invoke_result_t<F>()>>(std::move(f));
    auto done = task->get_future();
    post([task] { (*task)(); });
    return done.get();
  }

 private:
  void thread_main(FiberScheduler scheduler, unsigned thread_count);

  boost::fibers::buffered_channel<std::function<void()>> jobs_{64};
  std::vector<std::thread> threads_;
};

}  // namespace concbench
