#pragma once
// The deadline of the operations on one socket: of the fan_out client's
// asynchronous models, and of each connection of concbench-server.
//
// Beast's tcp_stream arms and cancels a timer around every read and every write:
// four timer operations and two more handlers per request. Here one
// timer per socket is armed only while no wait is pending (or for an earlier
// deadline); when it fires at a deadline that has since moved on, it re-arms
// itself for the current one. A busy connection touches it about once per
// timeout. On expiry it closes the socket, so that the pending operation ends
// (operation_aborted, or bad_descriptor for one started after), and expired()
// tells that ending from a cancel.
//
// Used on the socket's executor only (its thread or strand). The timer and what
// its handler needs live in a shared state that the pending wait holds, so the
// owner may go at any time; its destructor cancels the wait.
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <memory>

namespace concbench::fan_out {

template <class Socket>
class Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Deadline(Socket& socket) : state_(std::make_shared<State>(socket)) {}
  ~Deadline() {
    state_->socket = nullptr;
    state_->timer.cancel();
  }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  // The socket is closed if the operations from now on are not done by `at`.
  void start(Clock::time_point at) {
    state_->at = at;
    state_->expired = false;
    if (!state_->armed || state_->timer.expiry() > at) arm(state_);
  }
  // No operation is due: nothing closes the socket until the next start().
  void stop() { state_->at = Clock::time_point::max(); }
  // The socket was closed because the deadline passed (since the last start()).
  bool expired() const { return state_->expired; }

 private:
  using Timer = typename boost::asio::steady_timer::template rebind_executor<typename Socket::executor_type>::other;
  struct State {
    explicit State(Socket& s) : socket(&s), timer(s.get_executor()) {}
    Socket* socket;  // null once the owner went
    Timer timer;
    Clock::time_point at = Clock::time_point::max();  // max: nothing due
    std::uint64_t generation = 0;                     // of the latest wait
    bool armed = false;                               // a wait is pending
    bool expired = false;
  };

  static void arm(const std::shared_ptr<State>& s) {
    s->armed = true;
    s->timer.expires_at(s->at);  // cancels a pending wait: its handler sees an old generation
    s->timer.async_wait([s, generation = ++s->generation](const boost::system::error_code& ec) {
      if (generation != s->generation) return;  // re-armed since
      s->armed = false;
      if (ec || !s->socket || s->at == Clock::time_point::max()) return;  // cancelled, or nothing due
      if (Clock::now() < s->at) return arm(s);  // an earlier deadline: the current one is later
      s->expired = true;
      s->at = Clock::time_point::max();
      boost::system::error_code ignored;
      s->socket->close(ignored);
    });
  }

  std::shared_ptr<State> state_;
};

}  // namespace concbench::fan_out
