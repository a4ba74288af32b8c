#pragma once
// Asio operations from fibers: the calling fiber suspends (its thread goes on
// running the others and its io_context) until the operation completes.
//
//   asio::steady_timer timer(FiberPool::thread_context(), 50ms);
//   auto [ec] = fiber_await<boost::system::error_code>(
//       timer.get_executor(), [&](auto handler) { timer.async_wait(std::move(handler)); });
//
//   auto [ec, n] = fiber_await<boost::system::error_code, std::size_t>(
//       stream.get_executor(),
//       [&](auto handler) { beast::http::async_read(stream, buffer, parser, std::move(handler)); });
//
// The initiation is posted to `io_executor`, the executor of the socket or timer,
// so that every operation on an I/O object runs on the thread whose io_context
// owns it, even after work_stealing has moved the fiber to another thread (Asio
// I/O objects are not thread-safe). The completion runs there too, on that
// thread's fiber scheduler, and moves its arguments into a result slot that the
// handler owns: the fiber may resume on its own thread and return before the
// handler has finished, so the slot must outlive the fiber's wait.
//
// The slot is not a boost::fibers::promise: setting one locks a fiber mutex, and
// when the waiting fiber (on another thread) holds that mutex for a moment, the
// lock suspends the caller. A handler runs on the scheduler itself, which must
// never suspend (Boost.Fiber then finds no fiber to switch to and crashes). The
// slot is guarded by a std::mutex, held for a few instructions, and wakes the
// fiber through a fiber condition variable, whose notify never suspends.
//
// Cancelling: another fiber cancels a pending operation by running the object's
// cancel() on the same executor; the operation then completes with
// asio::error::operation_aborted. Either post it, and keep the object alive until
// that has run:
//   asio::post(timer.get_executor(), [&timer] { timer.cancel(); });
// or wait for it to have run, after which the object may go:
//   fiber_await<>(socket.get_executor(), [&](auto done) { socket.cancel(); done(); });
// A cancel that arrives after the completion does nothing; the waiter sees the
// operation's own result.
//
// `start` must start exactly one operation that calls its handler once. If it
// throws instead, fiber_await rethrows that exception in the fiber. If the
// handler is destroyed uncalled (its io_context went first), the fiber gets
// boost::fibers::broken_promise (a future_error).
#include "models/fiber_pool.hpp"

#include <boost/asio/post.hpp>
#include <boost/fiber/condition_variable.hpp>
#include <boost/fiber/exceptions.hpp>

#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>
#include <utility>

namespace concbench {

namespace detail {

// One result, set once from any thread without ever suspending, awaited by one
// fiber. The initiation, the completion handler and the fiber share it.
template <class Result>
class FiberResult {
 public:
  void set_value(Result result) {
    {
      std::lock_guard lock(mutex_);
      result_.emplace(std::move(result));
    }
    ready_.notify_one();
  }

  // The handler was destroyed uncalled: the fiber gets broken_promise, unless
  // the initiation is still running (end_initiation decides then).
  void abandon() {
    {
      std::lock_guard lock(mutex_);
      if (initiating_) {
        abandoned_ = true;
        return;
      }
      error_ = broken_promise();
    }
    ready_.notify_one();
  }

  // `error`: what the initiation threw, if anything.
  void end_initiation(std::exception_ptr error) {
    {
      std::lock_guard lock(mutex_);
      initiating_ = false;
      if (result_ || error_) return;
      if (!error && abandoned_) error = broken_promise();
      if (!error) return;  // the operation is under way
      error_ = std::move(error);
    }
    ready_.notify_one();
  }

  Result get() {  // suspends the calling fiber only
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [this] { return result_.has_value() || error_ != nullptr; });
    if (error_) std::rethrow_exception(error_);
    return std::move(*result_);
  }

  static std::exception_ptr broken_promise() {
    return std::make_exception_ptr(boost::fibers::broken_promise());
  }

 private:
  std::mutex mutex_;
  boost::fibers::condition_variable_any ready_;
  std::optional<Result> result_;
  std::exception_ptr error_;
  bool initiating_ = true;
  bool abandoned_ = false;
};

template <class... Args>
class FiberCompletion {
 public:
  using Result = FiberResult<std::tuple<Args...>>;

  FiberCompletion(std::shared_ptr<Result> result, FiberPool::PendingIo pending)
      : result_(std::move(result)), pending_(std::move(pending)) {}
  FiberCompletion(FiberCompletion&&) noexcept = default;
  FiberCompletion& operator=(FiberCompletion&&) = delete;
  ~FiberCompletion() {
    if (result_) result_->abandon();
  }

  void operator()(Args... args) {
    pending_.finish();
    std::exchange(result_, nullptr)->set_value(std::tuple<Args...>(std::move(args)...));
  }

 private:
  std::shared_ptr<Result> result_;
  FiberPool::PendingIo pending_;
};

// What fiber_await posts to the I/O object's executor.
template <class Start, class... Args>
class FiberInitiation {
 public:
  using Result = FiberResult<std::tuple<Args...>>;

  FiberInitiation(Start start, std::shared_ptr<Result> result) : start_(std::move(start)), result_(std::move(result)) {}
  FiberInitiation(FiberInitiation&&) noexcept = default;
  FiberInitiation& operator=(FiberInitiation&&) = delete;
  ~FiberInitiation() {
    if (result_) result_->end_initiation(Result::broken_promise());  // dropped unrun (its io_context went)
  }

  void operator()() {
    std::exception_ptr error;
    try {
      start_(FiberCompletion<Args...>(result_, std::move(pending_)));
    } catch (...) {
      error = std::current_exception();
    }
    std::exchange(result_, nullptr)->end_initiation(std::move(error));
  }

 private:
  Start start_;
  std::shared_ptr<Result> result_;
  FiberPool::PendingIo pending_;  // counted from the post on
};

}  // namespace detail

// Suspends the calling fiber (only) until the operation that `start(handler)`
// begins completes; returns the handler's arguments, `Args...` being its
// signature (void(error_code, std::size_t) -> fiber_await<error_code, size_t>).
template <class... Args, class Executor, class Start>
std::tuple<Args...> fiber_await(const Executor& io_executor, Start start) {
  auto result = std::make_shared<detail::FiberResult<std::tuple<Args...>>>();
  asio::post(io_executor, detail::FiberInitiation<Start, Args...>(std::move(start), result));
  return result->get();
}

}  // namespace concbench
