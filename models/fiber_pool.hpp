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
//
// I/O: every pool thread also owns an asio::io_context, and the fiber scheduler
// and that reactor share the thread (no extra I/O thread). The pool installs a
// scheduling algorithm that wraps round_robin or work_stealing and changes only
// how a thread idles: with no fiber ready it blocks in its io_context, so I/O
// completions, timers and wake-ups from other threads all end the wait; while
// fibers are ready it still polls the io_context once per scheduler round, but
// only while the pool has operations outstanding (see fiber_io.hpp), so work
// without I/O pays nothing for it.
//
// Handlers posted to a pool thread's io_context run on its fiber scheduler, not
// in a fiber: they must neither throw nor suspend, and suspending includes
// locking a fiber mutex, as boost::fibers::promise::set_value does (it suspends
// when the waiting fiber holds the promise's mutex on another thread). Wake
// fibers from handlers through fiber_await (fiber_io.hpp).
#include <boost/asio/io_context.hpp>
#include <boost/fiber/algo/algorithm.hpp>
#include <boost/fiber/buffered_channel.hpp>
#include <boost/fiber/condition_variable.hpp>
#include <boost/fiber/future.hpp>
#include <boost/fiber/mutex.hpp>

#include <atomic>
#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace concbench {

namespace asio = boost::asio;

enum class FiberScheduler { round_robin, work_stealing };

class FiberPool {
 public:
  FiberPool(FiberScheduler scheduler, unsigned threads);
  // Closes the job channel and joins the threads. Each thread keeps running its
  // fibers and its io_context until every job of the pool has returned (a fiber
  // may use a socket of another thread's io_context), then exits; the io_contexts
  // go last, once no thread can wake another.
  ~FiberPool();
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

  // The io_context of the pool thread the caller runs on; throws std::logic_error
  // off a pool thread. Sockets and timers that a fiber creates belong here, so
  // that their completions run on a pool thread. A fiber on a work_stealing pool
  // may later move to another thread: start operations through fiber_await with
  // the object's own executor, never by calling the object directly.
  static asio::io_context& thread_context();

  // Operations started through fiber_await and not yet completed (for tests and
  // diagnostics; the threads poll their io_context while it is not zero).
  std::size_t pending_io() const { return pending_io_.load(std::memory_order_relaxed); }

  // fiber_await's bookkeeping: counts one operation against the pool of the
  // calling thread (nothing off a pool thread) until finish() or destruction.
  // Move-only, so that it can travel inside a completion handler.
  class PendingIo {
   public:
    PendingIo() noexcept;
    PendingIo(PendingIo&& other) noexcept : count_(std::exchange(other.count_, nullptr)) {}
    PendingIo& operator=(PendingIo&&) = delete;
    ~PendingIo() { finish(); }
    void finish() noexcept {
      if (count_ != nullptr) std::exchange(count_, nullptr)->fetch_sub(1, std::memory_order_relaxed);
    }

   private:
    std::atomic<std::size_t>* count_;
  };

 private:
  void thread_main(FiberScheduler scheduler, unsigned index, unsigned thread_count);
  void job_done();

  boost::fibers::buffered_channel<std::function<void()>> jobs_{64};
  std::vector<std::thread> threads_;
  // Jobs posted and not yet returned: the threads wait for zero before they exit.
  std::atomic<std::size_t> live_jobs_{0};
  boost::fibers::mutex drain_mutex_;
  boost::fibers::condition_variable drain_cv_;
  // Read by every thread on every scheduler round: a cache line of its own.
  alignas(64) std::atomic<std::size_t> pending_io_{0};
  char pad_[64 - sizeof(std::atomic<std::size_t>)]{};
  // Each thread's scheduling algorithm, which owns its io_context: shared with
  // the thread's fiber scheduler and kept until the threads are joined, so that a
  // wake-up from another thread never reaches an io_context already gone. Last,
  // so destroyed first: a handler dropped with an io_context may still count
  // down pending_io_.
  std::vector<boost::intrusive_ptr<boost::fibers::algo::algorithm>> schedulers_;
};

}  // namespace concbench
