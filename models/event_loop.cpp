#include "models/event_loop.hpp"

namespace concbench {

EventLoop::EventLoop()
    : work_(asio::make_work_guard(context_)), thread_([this] { context_.run(); }) {}

EventLoop::~EventLoop() {
  work_.reset();
  context_.stop();
  thread_.join();
}

}  // namespace concbench
