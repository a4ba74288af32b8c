// Deadline (deadline.hpp) on its own: its one timer per socket is re-armed lazily,
// so the cases that matter are a deadline that moves while a wait is pending (later:
// the wait must re-arm, not close; earlier: it must re-arm now), an owner that goes
// with a wait pending, and a connection kept busy in time that must never close.
#include "workloads/fan_out/deadline.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <thread>

namespace concbench::fan_out {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Socket = asio::basic_stream_socket<asio::ip::tcp, asio::io_context::executor_type>;  // as the client's

// Two connected sockets on 127.0.0.1; `a` is the one under a deadline.
struct Loopback {
  explicit Loopback(asio::io_context& context) : a(context.get_executor()), b(context.get_executor()) {
    asio::ip::tcp::acceptor acceptor(context, {asio::ip::make_address("127.0.0.1"), 0});
    a.connect(acceptor.local_endpoint());
    acceptor.accept(b);
  }
  Socket a, b;
};

// When a read on `socket` ended (the peer never writes: only a close ends it), and how.
struct ReadEnd {
  std::optional<Clock::time_point> at;
  boost::system::error_code error;
  char byte;
};
void read_until_closed(Socket& socket, ReadEnd& end) {
  socket.async_read_some(asio::buffer(&end.byte, 1), [&end](const boost::system::error_code& ec, std::size_t) {
    end.at = Clock::now();
    end.error = ec;
  });
}

TEST(Deadline, StopThenStartClosesAtTheNewDeadlineNotTheOld) {
  // The timer is armed for the first deadline (50 ms); the second (20 + 100 ms) is
  // later, so start() leaves the timer as it is and its wake-up at 50 ms must re-arm.
  asio::io_context context(1);
  Loopback sockets(context);
  Deadline<Socket> deadline(sockets.a);
  deadline.start(Clock::now() + 50ms);
  Clock::time_point second;
  ReadEnd read;
  asio::steady_timer later(context, 20ms);
  later.async_wait([&](const boost::system::error_code&) {
    deadline.stop();
    deadline.start(second = Clock::now() + 100ms);
    read_until_closed(sockets.a, read);
  });
  context.run_for(500ms);
  ASSERT_TRUE(read.at.has_value()) << "never closed";
  EXPECT_EQ(read.error, asio::error::operation_aborted);
  EXPECT_GE(*read.at, second) << "closed " << (second - *read.at) / 1ms << " ms early";
  EXPECT_LT(*read.at, second + 100ms);
  EXPECT_TRUE(deadline.expired());
  EXPECT_FALSE(sockets.a.is_open());
}

TEST(Deadline, AnEarlierDeadlineReArmsAtOnce) {
  asio::io_context context(1);
  Loopback sockets(context);
  Deadline<Socket> deadline(sockets.a);
  const auto start = Clock::now();
  deadline.start(start + 10s);
  deadline.start(start + 50ms);
  ReadEnd read;
  read_until_closed(sockets.a, read);
  context.run_for(1s);
  ASSERT_TRUE(read.at.has_value()) << "not closed at the earlier deadline";
  EXPECT_GE(*read.at, start + 50ms);
  EXPECT_LT(*read.at, start + 150ms);
  EXPECT_TRUE(deadline.expired());
}

TEST(Deadline, DestroyedWithAWaitPendingLeavesTheSocketOpen) {
  asio::io_context context(1);
  Loopback sockets(context);
  {
    Deadline<Socket> deadline(sockets.a);
    deadline.start(Clock::now() + 10ms);
  }
  context.run_for(100ms);  // well past the deadline the destructor cancelled
  EXPECT_TRUE(sockets.a.is_open());
}

TEST(Deadline, TheOwnerAndTheSocketMayGoWhileAWaitIsPending) {
  // Nothing to assert but the absence of a use after free: ASan builds check it.
  {  // the wait cancelled, its handler still queued
    asio::io_context context(1);
    {
      Loopback sockets(context);
      Deadline<Socket> deadline(sockets.a);
      deadline.start(Clock::now() + 10ms);
    }
    context.run_for(50ms);
  }
  {  // the timer has fired, its handler may or may not have run
    asio::io_context context(1);
    {
      Loopback sockets(context);
      Deadline<Socket> deadline(sockets.a);
      deadline.start(Clock::now() + 1ms);
      std::this_thread::sleep_for(5ms);
      context.poll_one();
    }
    context.run_for(20ms);
  }
  {  // the io_context goes with the cancelled wait never run
    auto context = std::make_unique<asio::io_context>(1);
    {
      Loopback sockets(*context);
      Deadline<Socket> deadline(sockets.a);
      deadline.start(Clock::now() + 1s);
    }
    context.reset();
  }
}

// Requests of 20 ms against a timeout of 60 ms, back to back for 300 ms: the first
// deadline passes long before the last request ends, yet none is late.
void busy_in_time(bool stop_between) {
  asio::io_context context(1);
  Loopback sockets(context);
  Deadline<Socket> deadline(sockets.a);
  const auto end = Clock::now() + 300ms;
  asio::steady_timer request(context);
  std::function<void()> next = [&] {
    deadline.start(Clock::now() + 60ms);
    request.expires_after(20ms);
    request.async_wait([&](const boost::system::error_code&) {
      const bool more = Clock::now() < end;
      if (stop_between || !more) deadline.stop();  // none due after the last
      if (more) next();
    });
  };
  next();
  context.run_for(500ms);
  EXPECT_FALSE(deadline.expired());
  EXPECT_TRUE(sockets.a.is_open());
}

TEST(Deadline, AConnectionBusyInTimeNeverExpires) {
  {
    SCOPED_TRACE("stop after each request");
    busy_in_time(true);
  }
  {
    SCOPED_TRACE("each request starts before the last one stopped");
    busy_in_time(false);
  }
}

}  // namespace
}  // namespace concbench::fan_out
