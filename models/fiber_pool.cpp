#include "models/fiber_pool.hpp"

#include <boost/fiber/algo/work_stealing.hpp>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/operations.hpp>

#include <stdexcept>

namespace concbench {

FiberPool::FiberPool(FiberScheduler scheduler, unsigned thread_count) {
  if (thread_count == 0) throw std::invalid_argument("FiberPool needs at least one thread");
  if (scheduler == FiberScheduler::round_robin && thread_count != 1)
    throw std::invalid_argument("a round_robin FiberPool runs on exactly one thread");
  threads_.reserve(thread_count);
  for (unsigned i = 0; i < thread_count; ++i)
    threads_.emplace_back([this, scheduler, thread_count] { thread_main(scheduler, thread_count); });
}

FiberPool::~FiberPool() {
  jobs_.close();
  for (auto& t : threads_) t.join();
}

void FiberPool::post(std::function<void()> job) {
  if (jobs_.push(std::move(job)) != boost::fibers::channel_op_status::success)
    throw std::logic_error("FiberPool::post after shutdown");
}

void FiberPool::thread_main(FiberScheduler scheduler, unsigned thread_count) {
  if (scheduler == FiberScheduler::work_stealing) {
    // suspend=true: an idle thread sleeps on a condition variable instead of
    // spinning, so process CPU time shows real work only.
    boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(thread_count, true);
  }
  // This thread's main fiber hands jobs out as new fibers; popping suspends only
  // the main fiber, so the thread keeps running the fibers it already has. When
  // the channel closes the loop ends, and the scheduler finishes any fiber still
  // running before the thread exits.
  std::function<void()> job;
  while (jobs_.pop(job) == boost::fibers::channel_op_status::success)
    boost::fibers::fiber(std::move(job)).detach();
}

}  // namespace concbench
