#include "workloads/fan_out/fan_out_http.hpp"

#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <stdexcept>

namespace concbench::fan_out {

namespace http = boost::beast::http;
using boost::system::error_code;

namespace {

std::string host_port(const asio::ip::tcp::endpoint& server) {
  const auto address = server.address().to_string();
  return (server.address().is_v6() ? "[" + address + "]" : address) + ":" + std::to_string(server.port());
}

error_code last_error() { return {errno, boost::system::system_category()}; }

}  // namespace

asio::ip::tcp::endpoint endpoint_of(const Target& target) {
  error_code ec;
  const auto address = asio::ip::make_address(target.host, ec);
  if (ec) throw std::invalid_argument("not an IP address: '" + target.host + "'");
  return {address, target.port};
}

RequestText::RequestText(const Params& p, const asio::ip::tcp::endpoint& server)
    : text_("GET " + work_target({p.delay_us, p.body_bytes, p.fail, 0})),
      tail_(" HTTP/1.1\r\nHost: " + host_port(server) + "\r\n\r\n") {
  if (!text_.ends_with("&id=0")) throw std::logic_error("fan_out: the work target must end with its id");
  text_.pop_back();  // keep "&id=": each request appends its own id
  head_size_ = text_.size();
}

std::string_view RequestText::operator()(std::uint64_t id) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, id).ptr;
  text_.resize(head_size_);  // keeps the capacity: no allocation once warm
  text_.append(digits, end).append(tail_);
  return text_;
}

ResponseReader::ResponseReader(const Params& p, std::string& body) : body_(body) {
  body_limit(std::max<std::uint64_t>(p.body_bytes, 4096));
  body_.clear();
}

std::runtime_error unreachable(const asio::ip::tcp::endpoint& server, const error_code& error) {
  // An answer that is not HTTP, or larger than the request asked for: the server
  // was reached, and what it said is wrong.
  if (error.category() == make_error_code(boost::beast::http::error::bad_field).category())
    return std::runtime_error("the server at " + host_port(server) + " sent a malformed answer: " + error.message());
  return std::runtime_error("cannot reach the server at " + host_port(server) + ": " + error.message());
}

// ---- BlockingConnection ----

Ending BlockingConnection::fetch(Tally& tally, const Expected& e, std::uint64_t id, Clock::time_point deadline) {
  deadline_ = deadline;
  error_code ec;
  if (fd_ < 0) connect(ec);
  if (!ec) asio::write(*this, asio::buffer(request_(id)), ec);
  // The answer is hardly ever there the moment the request is sent: waiting for it
  // first saves a read that would fail with EAGAIN before the same wait.
  if (!ec && buffer_.size() == 0) wait(POLLIN, ec);
  ResponseReader response(e.p, body_);
  if (!ec) http::read(*this, buffer_, response, ec);
  if (!ec && !aborted_) {
    const Ending ending = record_response(tally, e, id, response.status(), response.body());
    if (!response.keep_alive()) close();
    return ending;
  }
  close();  // mid-request: the connection cannot be reused
  if (!aborted_ && ec != asio::error::timed_out) throw unreachable(server_, ec);
  const Ending ending = aborted_ ? Ending::cancelled : Ending::timed_out;
  tally.end(id, ending);
  return ending;
}

void BlockingConnection::abort() {
  std::lock_guard lock(fd_mutex_);
  aborted_ = true;
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

void BlockingConnection::close() {
  std::lock_guard lock(fd_mutex_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buffer_.clear();
}

void BlockingConnection::connect(error_code& ec) {
  {
    std::lock_guard lock(fd_mutex_);
    if (aborted_) return ec.assign(ECANCELED, boost::system::system_category());
    fd_ = ::socket(server_.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return ec.assign(errno, boost::system::system_category());
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd_, server_.data(), static_cast<socklen_t>(server_.size())) == 0) return;
  if (errno != EINPROGRESS) return ec.assign(errno, boost::system::system_category());
  if (!wait(POLLOUT, ec)) return;
  int error = 0;
  socklen_t size = sizeof error;
  ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &size);
  if (error) ec.assign(error, boost::system::system_category());
}

bool BlockingConnection::wait(short events, error_code& ec) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline_ - Clock::now());
    if (left.count() <= 0) {
      ec = asio::error::timed_out;
      return false;
    }
    pollfd p{fd_, events, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) {
      ec = last_error();
      return false;
    }
  }
}

std::size_t BlockingConnection::transfer(Iovecs& buffers, bool reading, error_code& ec) {
  ec.clear();
  if (buffers.empty()) return 0;
  for (;;) {
    if (aborted_) {
      ec.assign(ECANCELED, boost::system::system_category());
      return 0;
    }
    if (Clock::now() >= deadline_) {  // a peer that never lets a read block must not outlast it
      ec = asio::error::timed_out;
      return 0;
    }
    msghdr message{};
    message.msg_iov = buffers.data();
    message.msg_iovlen = buffers.size();
    const ssize_t n = reading ? ::recvmsg(fd_, &message, 0) : ::sendmsg(fd_, &message, MSG_NOSIGNAL);
    if (n > 0) return static_cast<std::size_t>(n);
    if (n == 0) {
      ec = asio::error::eof;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      ec = last_error();
      return 0;
    }
    if (!wait(reading ? POLLIN : POLLOUT, ec)) return 0;
  }
}

// ---- BlockingRun ----

BlockingRun::BlockingRun(const Target& target, const Expected& e, Measurements& m)
    : e_(e), m_(m), server_(endpoint_of(target)) {}

BlockingConnection& BlockingRun::connection() {
  std::lock_guard lock(mutex_);
  connections_.push_back(std::make_unique<BlockingConnection>(e_.p, server_));
  if (stopping_) connections_.back()->abort();
  return *connections_.back();
}

void BlockingRun::fetch(BlockingConnection& c, std::uint64_t id) {
  if (stopped()) return tally_.end(id, Ending::cancelled);
  {
    std::lock_guard lock(mutex_);
    ++in_flight_;
  }
  const auto start = std::chrono::steady_clock::now();
  std::optional<Ending> ending;
  try {
    ending = c.fetch(tally_, e_, id, start + e_.p.timeout);
  } catch (...) {
    tally_.end(id, Ending::cancelled);  // counted, though the run fails
    stop(std::current_exception());
  }
  const auto end = std::chrono::steady_clock::now();
  if (e_.p.group == Group::all && ending && *ending != Ending::ok && *ending != Ending::cancelled) stop(nullptr);
  std::lock_guard lock(mutex_);
  if (ending && *ending != Ending::cancelled) m_.latency.record(end - start);
  if (--in_flight_ == 0 && stopped()) m_.cancel = std::chrono::steady_clock::now() - first_failure_;
}

void BlockingRun::stop(std::exception_ptr fatal) {
  std::lock_guard lock(mutex_);
  if (fatal && !fatal_) fatal_ = fatal;
  if (stopping_.exchange(true)) return;
  first_failure_ = std::chrono::steady_clock::now();
  for (auto& c : connections_) c->abort();
}

Outcome BlockingRun::finish() {
  if (fatal_) std::rethrow_exception(fatal_);
  return tally_.outcome();
}

}  // namespace concbench::fan_out
