#pragma once
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <memory>

namespace concbench {

// Wraps an Asio completion handler so that another thread (a pool's) can complete
// it: the call posts the handler to its own executor, such as the event loop of
// the coroutine that waits, and keeps that executor alive until then. Copyable, so
// it fits in a std::function; call it once.
template <class Handler>
auto post_back(Handler handler) {
  auto work = boost::asio::make_work_guard(boost::asio::get_associated_executor(handler));
  auto shared = std::make_shared<Handler>(std::move(handler));
  return [shared, work](auto... args) mutable {
    boost::asio::post(work.get_executor(), [shared, args...]() mutable { (*shared)(std::move(args)...); });
  };
}

}  // namespace concbench
