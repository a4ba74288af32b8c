#include "models/process_pool.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <deque>
#include <fstream>
#include <future>
#include <system_error>

namespace concbench {

namespace {

constexpr const char* kNoWorker = "process pool has no worker: it could not start a replacement";

struct ReplyHeader {
  std::uint64_t size;
  std::uint64_t ok;  // 1: data follows; 0: an error message follows
};
struct SpawnRequest {
  pid_t reap;     // a dead worker to reap first, or 0
  unsigned slot;  // which count of tasks started the new worker keeps
};
struct SpawnReply {
  int reaped_status;  // wait status of the reaped worker
  int error;          // errno of a failed socketpair or fork
  pid_t pid;          // the new worker, or -1
};

[[noreturn]] void die(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

bool read_exact(int fd, void* data, std::size_t size) {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// Fills `data` from the inbox, then from `fd`.
bool read_exact(int fd, Inbox& inbox, void* data, std::size_t size) {
  auto* p = static_cast<char*>(data);
  for (;;) {
    switch (inbox.fill(p, size)) {
      case Inbox::Next::filled: return true;
      case Inbox::Next::direct: return read_exact(fd, p, size);
      case Inbox::Next::refill: break;
    }
    const auto space = inbox.space();
    ssize_t n = ::read(fd, space.data(), space.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    inbox.received(static_cast<std::size_t>(n));
  }
}

// Writes both buffers, in one system call when the socket has room: a reply that
// reached the pool in two pieces could cost its reader a second wake-up.
bool write_exact(int fd, const void* data, std::size_t size, const void* more = nullptr, std::size_t more_size = 0) {
  std::array<iovec, 2> parts{iovec{const_cast<void*>(data), size}, iovec{const_cast<void*>(more), more_size}};
  std::size_t first = 0;
  while (first < parts.size()) {
    if (parts[first].iov_len == 0) {
      ++first;
      continue;
    }
    msghdr message{};
    message.msg_iov = &parts[first];
    message.msg_iovlen = parts.size() - first;
    ssize_t n = ::sendmsg(fd, &message, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    for (auto left = static_cast<std::size_t>(n); left > 0;) {
      std::size_t used = std::min(left, parts[first].iov_len);
      parts[first].iov_base = static_cast<char*>(parts[first].iov_base) + used;
      parts[first].iov_len -= used;
      left -= used;
      if (parts[first].iov_len == 0) ++first;
    }
  }
  return true;
}

// Dies with its parent, so a crashed benchmark leaves no orphaned workers.
void die_with_parent(pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(1);
}

void append(Bytes& to, const void* data, std::size_t size) {
  const auto* p = static_cast<const std::byte*>(data);
  to.insert(to.end(), p, p + size);
}

// Replies are held back while two or more tasks wait here: the pool then hears
// from this worker once per batch, and still has a task's time to send more before
// the worker runs dry. A reply that would take what is held past kHeldBytes leaves
// at once, after those held, without being copied: holding saves wake-ups, not
// copies.
constexpr std::size_t kHeldBytes = 64 << 10;

[[noreturn]] void worker_main(int fd, std::atomic<std::uint64_t>& started) {
  Bytes payload, held;
  Inbox inbox;
  for (;;) {
    ProcessRequestHeader request;
    if (!read_exact(fd, inbox, &request, sizeof request)) ::_exit(0);  // pool closed
    payload.resize(request.size);
    if (!read_exact(fd, inbox, payload.data(), payload.size())) ::_exit(0);
    Bytes out;
    std::string error;
    started.fetch_add(1);
    try {
      out = reinterpret_cast<ProcessTask>(request.task)(payload);
    } catch (const std::exception& e) {
      error = *e.what() ? e.what() : "task threw an exception with no message";
    } catch (...) {
      error = "task threw a non-standard exception";
    }
    const std::string_view body = error.empty() ? std::string_view(reinterpret_cast<const char*>(out.data()), out.size())
                                                : std::string_view(error);
    const ReplyHeader reply{body.size(), error.empty() ? 1u : 0u};
    append(held, &reply, sizeof reply);
    if (held.size() + body.size() <= kHeldBytes && inbox.two_requests_waiting(fd)) {
      append(held, body.data(), body.size());
      continue;
    }
    if (!write_exact(fd, held.data(), held.size(), body.data(), body.size())) ::_exit(0);
    held.clear();
  }
}

// Sends `fd` and `reply` over the control socket (SCM_RIGHTS).
bool send_worker(int control, const SpawnReply& reply, int fd) {
  iovec iov{const_cast<SpawnReply*>(&reply), sizeof reply};
  alignas(cmsghdr) char control_buf[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (fd >= 0) {
    msg.msg_control = control_buf;
    msg.msg_controllen = sizeof control_buf;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  return ::sendmsg(control, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof reply);
}

bool receive_worker(int control, SpawnReply& reply, int& fd) {
  iovec iov{&reply, sizeof reply};
  alignas(cmsghdr) char control_buf[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control_buf;
  msg.msg_controllen = sizeof control_buf;
  ssize_t n;
  do n = ::recvmsg(control, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof reply)) return false;
  fd = -1;
  if (cmsghdr* c = CMSG_FIRSTHDR(&msg); c && c->cmsg_type == SCM_RIGHTS)
    std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return true;
}

// The spawner: single-threaded, it forks workers on request and reaps them. It
// exits when the pool closes the control socket, after reaping every worker.
[[noreturn]] void spawner_main(int control, std::atomic<std::uint64_t>* started) {
  const pid_t self = ::getpid();
  std::vector<pid_t> children;
  SpawnRequest request;
  while (read_exact(control, &request, sizeof request)) {
    SpawnReply reply{0, 0, -1};
    if (request.reap > 0) {
      ::waitpid(request.reap, &reply.reaped_status, 0);
      std::erase(children, request.reap);
    }
    // The old worker is reaped: nothing else writes the slot now.
    started[request.slot] = 0;
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) {
      reply.error = errno;
      send_worker(control, reply, -1);
      continue;
    }
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(control);
      ::close(pair[0]);
      die_with_parent(self);
      // A refusal is not fatal: the run's context records what the workers got.
      const sched_param no_priority{};
      ::sched_setscheduler(0, SCHED_IDLE, &no_priority);
      worker_main(pair[1], started[request.slot]);
    }
    ::close(pair[1]);
    reply.pid = pid;
    if (pid < 0) reply.error = errno;
    if (pid > 0) children.push_back(pid);
    bool sent = send_worker(control, reply, pid > 0 ? pair[0] : -1);
    ::close(pair[0]);
    if (!sent) break;
  }
  ::close(control);
  // The pool is gone: a task still running has no one to report to.
  for (pid_t child : children) ::kill(child, SIGKILL);
  while (::wait(nullptr) > 0 || errno == EINTR) {
  }
  ::_exit(0);
}

std::string describe_exit(pid_t pid, int status) {
  return "worker process " + std::to_string(pid) + " " + describe_wait_status(status);
}

}  // namespace

Inbox::Next Inbox::fill(char*& data, std::size_t& size) {
  const std::size_t n = std::min(size, end_ - begin_);
  if (n > 0) {  // `data` may be null otherwise
    std::memcpy(data, bytes_.data() + begin_, n);
    data += n;
    size -= n;
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  return size == 0 ? Next::filled : size >= kCapacity ? Next::direct : Next::refill;
}

bool Inbox::two_requests_waiting(int fd) {
  auto whole = [this] {
    std::size_t count = 0;
    for (std::size_t at = begin_; count < 2 && end_ - at >= sizeof(ProcessRequestHeader); ++count) {
      ProcessRequestHeader header;
      std::memcpy(&header, bytes_.data() + at, sizeof header);
      if (end_ - at - sizeof header < header.size) break;
      at += sizeof header + header.size;
    }
    return count;
  };
  if (whole() == 2) return true;
  if (const auto room = space(); !room.empty()) {
    ssize_t got = ::recv(fd, room.data(), room.size(), MSG_DONTWAIT);
    if (got > 0) received(static_cast<std::size_t>(got));
  }
  return whole() == 2;
}

std::span<std::byte> Inbox::space() {
  if (begin_ > 0) {  // keep what is held at the front, so the space is as large as it can be
    std::memmove(bytes_.data(), bytes_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  return {bytes_.data() + end_, bytes_.size() - end_};
}

std::string describe_wait_status(int status) {
  if (WIFSIGNALED(status))
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + ::strsignal(WTERMSIG(status)) + ")";
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  return "ended";
}

ProcessPool::ProcessPool(unsigned worker_count) {
  if (worker_count == 0) throw std::invalid_argument("ProcessPool needs at least one worker");
  // Mapped before the spawner forks, so that it and every worker share it.
  using Count = std::atomic<std::uint64_t>;
  const std::size_t shared_bytes = sizeof(Count) * worker_count;
  void* shared = ::mmap(nullptr, shared_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) die("mmap");
  started_ = {static_cast<Count*>(shared), Unmap{shared_bytes}};
  std::uninitialized_value_construct_n(started_.get(), worker_count);
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) die("socketpair");
  const pid_t parent = ::getpid();
  spawner_pid_ = ::fork();
  if (spawner_pid_ < 0) {
    int error = errno;
    ::close(pair[0]);
    ::close(pair[1]);
    errno = error;
    die("fork");
  }
  if (spawner_pid_ == 0) {
    // Keep only stdio and the control socket: an inherited copy of another
    // pool's socket would keep that pool's workers from ever seeing EOF.
    ::dup2(pair[1], 3);
    ::close_range(4, ~0U, 0);
    die_with_parent(parent);
    spawner_main(3, started_.get());
  }
  ::close(pair[1]);
  spawner_fd_ = pair[0];

  try {
    for (unsigned i = 0; i < worker_count; ++i) {
      workers_.push_back(std::make_unique<Worker>(context_, started_[i]));
      std::string failure = respawn(*workers_.back());
      if (!workers_.back()->socket.is_open())
        throw std::runtime_error("process pool: cannot start a worker: " + failure);
    }
  } catch (...) {
    shutdown();  // reap what was started before reporting
    throw;
  }
  live_readers_ = workers_.size();
  for (auto& worker : workers_)
    asio::co_spawn(context_, read_replies(*worker), [this](std::exception_ptr error) {
      // A reader that failed would strand its worker's tasks: fail loudly instead.
      if (error) std::rethrow_exception(error);
      --live_readers_;
      stop_when_idle();
    });
  io_thread_ = std::thread([this] { context_.run(); });
}

ProcessPool::~ProcessPool() { shutdown(); }

void ProcessPool::Unmap::operator()(std::atomic<std::uint64_t>* p) const { ::munmap(p, bytes); }

void ProcessPool::shutdown() {
  if (spawner_fd_ < 0) return;
  closed_ = true;
  asio::post(context_, [this] {
    stopping_ = true;
    fail_all(queue_, "process pool shut down before the task ran");
    for (auto& worker : workers_) worker->socket.close();  // workers read EOF and exit
    stop_when_idle();
  });
  work_.reset();
  if (io_thread_.joinable()) io_thread_.join();
  for (auto& worker : workers_) worker->socket.close();  // if the I/O thread never started
  ::close(spawner_fd_);  // the spawner reaps every worker, then exits
  spawner_fd_ = -1;
  while (::waitpid(spawner_pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
}

void ProcessPool::submit(ProcessTask task, Bytes payload, std::function<void(TaskResult)> done) {
  if (closed_) {  // the I/O thread may be gone: nothing posted would run
    done({{}, "process pool is shut down"});
    return;
  }
  // On the I/O thread itself (a completion that submits the next task, or an event
  // loop sharing the thread) this runs at once: a post would cost the loop an extra
  // poll of its sockets.
  asio::dispatch(context_, [this, pending = Pending{task, std::move(payload), std::move(done)}]() mutable {
    if (stopping_ || !has_live_worker()) {
      pending.done({{}, stopping_ ? "process pool is shut down" : kNoWorker});
      return;
    }
    queue_.push_back(std::move(pending));
    pump();
  });
}

void ProcessPool::stop_when_idle() {
  // An event loop sharing the thread may have left timers or posts behind; they
  // would keep the thread from ever joining.
  if (stopping_ && live_readers_ == 0) context_.stop();
}

TaskResult ProcessPool::run(ProcessTask task, Bytes payload) {
  std::promise<TaskResult> promise;
  auto result = promise.get_future();
  submit(task, std::move(payload), [&promise](TaskResult r) { promise.set_value(std::move(r)); });
  return result.get();
}

std::vector<pid_t> ProcessPool::worker_pids() const {
  std::lock_guard lock(pids_mutex_);
  std::vector<pid_t> pids;
  for (const auto& worker : workers_) pids.push_back(worker->pid);
  return pids;
}

std::optional<int> ProcessPool::worker_policy() const {
  for (pid_t pid : worker_pids())
    if (const int policy = pid > 0 ? ::sched_getscheduler(pid) : -1; policy >= 0) return policy;
  return std::nullopt;
}

unsigned ProcessPool::replacements() const {
  std::lock_guard lock(pids_mutex_);
  return replacements_;
}

void ProcessPool::fail_all(std::deque<Pending>& tasks, const std::string& error) {
  for (auto& task : tasks) task.done({{}, error});
  tasks.clear();
}

bool ProcessPool::has_live_worker() const {
  return std::any_of(workers_.begin(), workers_.end(), [](const auto& w) { return w->socket.is_open(); });
}

void ProcessPool::pump() {
  while (!queue_.empty()) {
    // The least loaded worker that can take one more. A busy worker takes more,
    // so that it starts the next task the moment it finishes one instead of idling
    // through two wake-ups (ours and its own), and can hold its replies back (see
    // worker_main). A worker with n tasks takes another only while more than n per
    // worker wait: under a backlog every worker fills up, and the last few tasks go
    // to whichever worker frees first rather than queue behind a busy one.
    Worker* target = nullptr;
    for (auto& w : workers_)
      if (!w->writing && w->socket.is_open() && w->sent.size() < kDepth &&
          queue_.size() > workers_.size() * w->sent.size() && (!target || w->sent.size() < target->sent.size()))
        target = w.get();
    if (!target) return;
    target->sent.push_back(std::move(queue_.front()));
    queue_.pop_front();
    Pending& task = target->sent.back();
    task.header = {reinterpret_cast<std::uint64_t>(task.task), task.payload.size()};
    target->writing = true;
    std::array<asio::const_buffer, 2> out{asio::buffer(&task.header, sizeof task.header), asio::buffer(task.payload)};
    asio::async_write(target->socket, out,
                      [this, target, generation = target->generation](boost::system::error_code error, std::size_t) {
                        if (generation != target->generation) return;  // that worker was replaced meanwhile
                        target->writing = false;
                        if (error) return;  // the worker is gone: its reader handles that
                        pump();
                      });
  }
}

asio::awaitable<void> ProcessPool::read_replies(Worker& worker) {
  for (;;) {
    TaskResult result;
    if (co_await receive(worker, result) && !worker.sent.empty()) {
      Pending done = std::move(worker.sent.front());
      worker.sent.pop_front();
      ++worker.replies;
      pump();
      done.done(std::move(result));
      continue;
    }
    if (stopping_) {
      fail_all(worker.sent, "process pool shut down while the task was running");
      co_return;
    }
    // The worker is gone. The last task it started fails, unless its reply came:
    // the worker died on it, or on its reply. The others without a reply go back to
    // the front of the queue: those it never started, and those it finished whose
    // replies it held back and took with it. Each death fails one task, even with
    // a count that a task scribbled on, so no task kills worker after worker.
    const std::uint64_t unreplied = worker.started - worker.replies;  // read before respawn resets it
    std::string ended = respawn(worker);
    if (unreplied > 0 && !worker.sent.empty()) {
      const auto last = worker.sent.begin() + static_cast<std::ptrdiff_t>(std::min(unreplied, worker.sent.size()) - 1);
      last->done({{}, ended + " while running the task"});
      worker.sent.erase(last);
    }
    while (!worker.sent.empty()) {
      queue_.push_front(std::move(worker.sent.back()));
      worker.sent.pop_back();
    }
    worker.writing = false;
    if (!has_live_worker()) fail_all(queue_, kNoWorker + (": " + ended));
    pump();  // the requeued tasks may go to the other workers
    if (!worker.socket.is_open()) co_return;
  }
}

double ProcessPool::worker_cpu_seconds() const {
  // schedstat's first field is the time the (single-threaded) worker has run, in
  // ns; /proc/PID/stat's utime and stime tick at 10 ms, too coarse for a 0.2 s run.
  double seconds = 0;
  for (pid_t pid : worker_pids()) {
    if (pid == 0) continue;
    std::ifstream schedstat("/proc/" + std::to_string(pid) + "/schedstat");
    double ns = 0;
    if (schedstat >> ns) seconds += ns / 1e9;
  }
  return seconds;
}

asio::awaitable<bool> ProcessPool::read_exact(Worker& worker, void* data, std::size_t size) {
  using asio::as_tuple, asio::use_awaitable;
  auto* p = static_cast<char*>(data);
  for (;;) {
    switch (worker.inbox.fill(p, size)) {
      case Inbox::Next::filled: co_return true;
      case Inbox::Next::direct: {
        auto [error, n] = co_await asio::async_read(worker.socket, asio::buffer(p, size), as_tuple(use_awaitable));
        co_return !error;
      }
      case Inbox::Next::refill: break;
    }
    const auto space = worker.inbox.space();
    auto [error, n] = co_await worker.socket.async_read_some(asio::buffer(space.data(), space.size()),
                                                             as_tuple(use_awaitable));
    if (error) co_return false;
    worker.inbox.received(n);
  }
}

asio::awaitable<bool> ProcessPool::receive(Worker& worker, TaskResult& result) {
  ReplyHeader reply;
  if (!co_await read_exact(worker, &reply, sizeof reply)) co_return false;
  Bytes body(reply.size);
  if (!co_await read_exact(worker, body.data(), body.size())) co_return false;
  if (reply.ok) {
    result = {std::move(body), {}};
  } else {
    result = {{}, std::string(reinterpret_cast<const char*>(body.data()), body.size())};
    if (result.error.empty()) result.error = "task failed";
  }
  co_return true;
}

std::string ProcessPool::respawn(Worker& worker) {
  const pid_t old = worker.pid;
  boost::system::error_code ignored;
  worker.socket.close(ignored);
  worker.inbox.clear();  // what a dead worker left unread is no reply
  ++worker.generation;
  worker.replies = 0;
  SpawnRequest request{old, static_cast<unsigned>(&worker.started - started_.get())};
  SpawnReply reply{};
  int fd = -1;
  {
    std::lock_guard lock(pids_mutex_);
    worker.pid = 0;  // reaped below: its pid may be reused
  }
  if (!write_exact(spawner_fd_, &request, sizeof request) || !receive_worker(spawner_fd_, reply, fd))
    return "the spawner process is gone";
  std::string ended = old > 0 ? describe_exit(old, reply.reaped_status) : "";
  if (reply.pid < 0 || fd < 0) {
    return (ended.empty() ? "" : ended + "; ") +
           "starting a worker failed: " + std::strerror(reply.error);
  }
  worker.socket.assign(asio::local::stream_protocol(), fd);
  std::lock_guard lock(pids_mutex_);
  worker.pid = reply.pid;
  if (old > 0) ++replacements_;
  return ended;
}

}  // namespace concbench
