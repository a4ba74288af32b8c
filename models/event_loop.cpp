#include "models/event_loop.hpp"

namespace concbench {

EventLoop::EventLoop()
    : owned_(std::in_place, 1),  // hint: one thread runs it
      context_(&*owned_),
      work_(asio::make_work_guard(*context_)),
      thread_([this] { context_->run(); }),
      thread_id_(thread_.get_id()) {}

EventLoop::EventLoop(asio::io_context& context, std::thread::id thread) : context_(&context), thread_id_(thread) {}

EventLoop::~EventLoop() {
  if (!thread_.joinable()) return;
  work_.reset();
  context_->stop();
  thread_.join();
}

}  // namespace concbench
