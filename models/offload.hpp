#pragma once
// Offloading blocking or CPU-heavy work from an event loop or a fiber to the
// thread pool, as asyncio's to_thread does: the waiting coroutine or fiber
// suspends, its thread goes on running the others, and it resumes with the result
// (or the exception) when the pool is done. (The process pool's counterparts are
// ProcessPool::async_run and a fiber promise set from ProcessPool::submit.)
#include "models/post_back.hpp"
#include "models/thread_pool.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/fiber/future.hpp>

#include <exception>
#include <memory>
#include <type_traits>

namespace concbench {

// Completes with (exception_ptr, result) on the token's executor:
// `int n = co_await async_offload(pool, f, asio::use_awaitable);` rethrows there.
template <class F, class CompletionToken>
auto async_offload(ThreadPool& pool, F f, CompletionToken&& token) {
  using Result = std::invoke_result_t<F&>;
  static_assert(!std::is_void_v<Result> && std::is_default_constructible_v<Result>,
                "async_offload: the offloaded function returns a default-constructible value");
  return boost::asio::async_initiate<CompletionToken, void(std::exception_ptr, Result)>(
      [&pool](auto handler, F f) {
        pool.post([complete = post_back(std::move(handler)), f = std::move(f)]() mutable {
          std::exception_ptr error;
          Result result{};
          try {
            result = f();
          } catch (...) {
            error = std::current_exception();
          }
          complete(error, std::move(result));
        });
      },
      token, std::move(f));
}

// The fiber form: get() on the future suspends only the calling fiber.
template <class F>
boost::fibers::future<std::invoke_result_t<F&>> fiber_offload(ThreadPool& pool, F f) {
  auto task = std::make_shared<boost::fibers::packaged_task<std::invoke_result_t<F&>()>>(std::move(f));
  auto result = task->get_future();
  pool.post([task] { (*task)(); });
  return result;
}

}  // namespace concbench
