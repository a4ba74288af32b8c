#pragma once
// event_loop: one boost::asio::io_context run by one thread, work written as C++20
// coroutines. This is the asyncio / Node.js shape: every coroutine on the loop
// shares its one thread, so they interleave only at co_await, and a blocking call
// stalls all of them.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <optional>
#include <thread>

namespace concbench {

namespace asio = boost::asio;

class EventLoop {
 public:
  EventLoop();  // a loop of its own, on a new thread
  // The loop that another owner already runs on one thread of its own; Runtimes
  // shares the process pool's this way, so that a coroutine reaches the worker
  // sockets itself instead of through a second thread.
  EventLoop(asio::io_context& context, std::thread::id thread);
  ~EventLoop();  // a loop of its own: stops it and joins its thread
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  asio::io_context& context() { return *context_; }
  std::thread::id thread_id() const { return thread_id_; }

  // Runs `task` on the loop; the calling thread (never the loop's own) blocks
  // until it finishes and gets its result or its exception.
  template <class T>
  T run(asio::awaitable<T> task) {
    return asio::co_spawn(*context_, std::move(task), asio::use_future).get();
  }

 private:
  std::optional<asio::io_context> owned_;  // a loop of its own only
  asio::io_context* context_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;  // a loop of its own only
  std::thread::id thread_id_;
};

}  // namespace concbench
