#include "models/fiber_pool.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/fiber/algo/algorithm.hpp>
#include <boost/fiber/algo/round_robin.hpp>
#include <boost/fiber/algo/work_stealing.hpp>
#include <boost/fiber/context.hpp>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/operations.hpp>
#include <boost/fiber/scheduler.hpp>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <stdexcept>

namespace concbench {

namespace {

using TimePoint = std::chrono::steady_clock::time_point;

// The scheduling algorithm of a pool thread: round_robin or work_stealing decides
// which fiber runs next; this wrapper owns the thread's io_context and makes the
// thread idle in it.
//
// Boost.Fiber calls the algorithm from its dispatcher fiber (the scheduler's loop)
// and, through pick_next, from any fiber that suspends, sometimes while that fiber
// holds a spinlock of the primitive it waits on. Handlers therefore run only on
// the dispatcher: in suspend_until, and in pick_next when the dispatcher is the
// caller. A handler must not suspend (it runs on the dispatcher, and a
// dispatcher that waits leaves Boost.Fiber with no fiber to switch to) and must
// not throw (these functions are noexcept); the ones fiber_await installs only
// fill a result slot and notify a fiber condition variable, which never suspends.
class IoScheduler final : public boost::fibers::algo::algorithm {
 public:
  IoScheduler(boost::intrusive_ptr<algorithm> inner, const std::atomic<std::size_t>& pending_io)
      : inner_(std::move(inner)), pending_io_(pending_io) {}

  asio::io_context& io() { return io_; }
  // The thread is done with I/O: run_one() may now return for want of work.
  void release_work() { work_.reset(); }

  void awakened(boost::fibers::context* ctx) noexcept override { inner_->awakened(ctx); }

  boost::fibers::context* pick_next() noexcept override {
    // The dispatcher comes round once per round of ready fibers; polling there
    // lets completions in while fibers keep the thread busy.
    if (pending_io_.load(std::memory_order_relaxed) != 0 &&
        boost::fibers::context::active()->is_context(boost::fibers::type::dispatcher_context))
      io_.poll();
    return inner_->pick_next();
  }

  bool has_ready_fibers() const noexcept override { return inner_->has_ready_fibers(); }

  // No fiber is ready: wait in the io_context until a handler runs (a completion,
  // a wake-up from notify, or the timer for the earliest sleeping fiber).
  void suspend_until(const TimePoint& until) noexcept override {
    if (std::exchange(woken_, false)) return;  // a wake-up already ran in pick_next's poll
    if (until != TimePoint::max() && until != armed_) arm(until);
    io_.run_one();
    woken_ = false;  // the dispatcher looks at its queues next in any case
  }

  // A fiber of this thread became ready on another thread (or the scheduler is
  // shutting down). One wake-up handler at a time is enough: `wake_posted_` stays
  // set until it runs, and whatever readied a fiber before that is seen when the
  // dispatcher next looks at its remote queue.
  void notify() noexcept override {
    if (!wake_posted_.exchange(true, std::memory_order_acq_rel))
      asio::post(io_, [this] {
        wake_posted_.exchange(false, std::memory_order_acq_rel);
        woken_ = true;
      });
  }

 private:
  // A timer on the io_context, not run_one_until: the reactor rounds a wait up to
  // whole milliseconds, while its timers (timerfd) keep fiber sleeps as precise as
  // Boost.Fiber's own condition-variable waits. Re-arming cancels the previous
  // wait (its handler runs once, with operation_aborted), so the timer is re-armed
  // only for a new deadline.
  void arm(TimePoint until) {
    armed_ = until;
    timer_.expires_at(until);
    timer_.async_wait([this, generation = ++generation_](const boost::system::error_code&) {
      if (generation == generation_) armed_ = TimePoint::max();
    });
  }

  boost::intrusive_ptr<algorithm> inner_;
  const std::atomic<std::size_t>& pending_io_;
  asio::io_context io_{1};  // one thread runs it; others only post to it
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  asio::steady_timer timer_{io_};
  TimePoint armed_ = TimePoint::max();
  std::uint64_t generation_ = 0;
  bool woken_ = false;
  std::atomic<bool> wake_posted_{false};
};

struct PoolThread {
  asio::io_context* io = nullptr;
  std::atomic<std::size_t>* pending_io = nullptr;
};
thread_local PoolThread this_pool_thread;

}  // namespace

FiberPool::PendingIo::PendingIo() noexcept : count_(this_pool_thread.pending_io) {
  if (count_ != nullptr) count_->fetch_add(1, std::memory_order_relaxed);
}

asio::io_context& FiberPool::thread_context() {
  if (this_pool_thread.io == nullptr) throw std::logic_error("FiberPool::thread_context off a pool thread");
  return *this_pool_thread.io;
}

FiberPool::FiberPool(FiberScheduler scheduler, unsigned thread_count) {
  if (thread_count == 0) throw std::invalid_argument("FiberPool needs at least one thread");
  if (scheduler == FiberScheduler::round_robin && thread_count != 1)
    throw std::invalid_argument("a round_robin FiberPool runs on exactly one thread");
  schedulers_.resize(thread_count);
  threads_.reserve(thread_count);
  for (unsigned i = 0; i < thread_count; ++i)
    threads_.emplace_back([this, scheduler, i, thread_count] { thread_main(scheduler, i, thread_count); });
}

FiberPool::~FiberPool() {
  jobs_.close();
  for (auto& t : threads_) t.join();
}

void FiberPool::post(std::function<void()> job) {
  live_jobs_.fetch_add(1, std::memory_order_relaxed);
  if (jobs_.push(std::move(job)) != boost::fibers::channel_op_status::success) {
    live_jobs_.fetch_sub(1, std::memory_order_relaxed);
    throw std::logic_error("FiberPool::post after shutdown");
  }
}

void FiberPool::job_done() {
  if (live_jobs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    std::unique_lock lock(drain_mutex_);
    drain_cv_.notify_all();
  }
}

void FiberPool::thread_main(FiberScheduler scheduler, unsigned index, unsigned thread_count) {
  boost::intrusive_ptr<boost::fibers::algo::algorithm> inner;
  if (scheduler == FiberScheduler::work_stealing) {
    // suspend=true: an idle thread sleeps instead of spinning, so process CPU time
    // shows real work only. (The wrapper does the sleeping, in the io_context.)
    // The constructor waits until every thread of the pool has built its own.
    inner = new boost::fibers::algo::work_stealing(thread_count, true);
  } else {
    inner = new boost::fibers::algo::round_robin();
  }
  // The thread's fiber scheduler and the pool share the wrapper, and so the
  // io_context: fibers still finishing when the thread's fiber runtime shuts down
  // can use it, and other threads can post to it until the pool is destroyed.
  boost::intrusive_ptr<IoScheduler> algo(new IoScheduler(std::move(inner), pending_io_));
  schedulers_[index] = algo;
  boost::fibers::context::active()->get_scheduler()->set_algo(algo);
  this_pool_thread = {&algo->io(), &pending_io_};

  // This thread's main fiber hands jobs out as new fibers; popping suspends only
  // the main fiber, so the thread keeps running the fibers it already has.
  std::function<void()> job;
  while (jobs_.pop(job) == boost::fibers::channel_op_status::success)
    boost::fibers::fiber([this, job = std::move(job)] {
      job();
      job_done();
    }).detach();

  // The channel is closed. Keep serving fibers and I/O until every job of the
  // pool has returned (on work_stealing a job elsewhere may still use a socket of
  // this thread), then let the io_context run out of work so the thread can exit;
  // the scheduler finishes any other fiber before the thread ends.
  {
    std::unique_lock lock(drain_mutex_);
    drain_cv_.wait(lock, [this] { return live_jobs_.load(std::memory_order_acquire) == 0; });
  }
  algo->release_work();
}

}  // namespace concbench
