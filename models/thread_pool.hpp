#pragma once
// thread_pool: a oneTBB task_arena of N threads (a caller of run() takes one of the
// N slots). Tasks run to completion on OS threads and steal from each other: the
// "just use a thread pool" answer.
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <functional>
#include <utility>

namespace concbench {

class ThreadPool {
 public:
  explicit ThreadPool(unsigned threads);
  ~ThreadPool();  // terminates the arena and waits for TBB's worker threads to exit
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned threads() const { return threads_; }

  // Runs `f` inside the arena on the calling thread; parallel algorithms called
  // from `f` use the arena's threads.
  template <class F>
  decltype(auto) run(F&& f) {
    return arena_.execute(std::forward<F>(f));
  }

  // Queues `job` to run on one of the arena's threads and returns at once: the
  // offload target of an event loop or a fiber. Jobs still queued or running when
  // the pool is destroyed are waited for.
  void post(std::function<void()> job) { arena_.enqueue(posted_.defer(std::move(job))); }

 private:
  unsigned threads_;
  tbb::task_scheduler_handle scheduler_{tbb::attach{}};
  // TBB caps parallelism at the core count by default; --workers may ask for more.
  tbb::global_control parallelism_;
  tbb::task_arena arena_;
  tbb::task_group posted_;
};

}  // namespace concbench
