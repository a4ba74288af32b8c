#pragma once
// process_pool: worker processes that take tasks and send back results over Unix
// sockets, like Python's ProcessPoolExecutor. Reaching a process costs a copy
// through the kernel and a wake-up on each side; the workloads measure when that
// still pays.
//
// How it is built:
// - The constructor forks a small *spawner* process while the program has only one
//   thread; the spawner forks every worker, at start and as replacements. Workers
//   are therefore never forked from a multi-threaded process.
// - A task is a plain function plus a byte payload. Workers are forks of this
//   program image (no exec), so the function's address is valid in them and is
//   what the pool sends.
// - One I/O thread of the pool owns the sockets (Asio). `submit` is thread-safe and
//   asynchronous; its completion runs on the I/O thread, where it may set a promise,
//   fulfil a fiber future or post to an event loop (`async_run` does the last).
//   An event loop may run on that same thread (`io_context()`): its coroutines then
//   write to the worker sockets and are woken by the replies themselves, without
//   the two hops through a pool thread that asyncio's ProcessPoolExecutor makes.
// - A worker that dies fails its running task with an error naming the worker and
//   how it ended; the spawner reaps it (no zombie) and starts a replacement, so the
//   tasks after it still run on a full pool.
// - Workers run under SCHED_IDLE (sched(7)), as background work beside the threads
//   they serve: a woken worker never preempts another thread, and any other thread
//   that wakes takes its CPU from a worker at once. Where the kernel wakes a worker
//   on the CPU of the thread that woke it, as the 2-core VM's always does, a worker
//   at the loop's priority held that CPU and the loop waited behind it: in 10 runs
//   of blocking_stall (event_loop, kind:cpu, 2 ms of work offloaded) the loop was
//   preempted by a worker 243 times and waited 50 ms for its CPU, and light p99 was
//   1.1-1.8 ms in 9 of the runs (inline: 1.95 ms). Nice 10 removed that in runs of
//   blocking_stall alone, but interleaved with cpu_hash's process_pool cells, as in
//   the default suite, light p99 at 0.5-2 ms of work came back to 0.3-0.9 ms. Under
//   SCHED_IDLE it stayed at 58-59 µs, and cpu_hash's throughput with 1 and 2 workers
//   stayed as under nice 10. Fibers pay a little: there the pool's I/O thread wakes
//   the worker beside the thread it serves and the worker waits for that CPU, and one
//   offload (heavy p50 over inline's) cost 75-80 µs against 68-71 µs under
//   SCHED_OTHER; from the event loop, 32-36 against 39-41 µs (three interleaved
//   pairs of runs).
// - A worker with two or more tasks waiting holds its replies back and sends them
//   together, so the I/O thread wakes once per batch rather than once per task (on
//   a VM each wake-up costs both sides some 15 µs of CPU). A held reply waits for
//   at most the two tasks queued behind it; with no backlog every reply leaves at
//   once. Each worker counts the tasks it has started in memory it shares with
//   the pool: when it dies, the last task it started fails unless its reply came,
//   and the others without a reply (held back and lost, or never started) run
//   again.
#include "models/post_back.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace concbench {

namespace asio = boost::asio;

using Bytes = std::vector<std::byte>;

// Runs in a worker process. Throwing fails the task with the exception's message.
using ProcessTask = Bytes (*)(std::span<const std::byte> payload);

struct TaskResult {
  Bytes data;
  std::string error;  // empty on success
  bool ok() const { return error.empty(); }
};

// Wire format, host byte order: both ends are the same binary on the same machine.
struct ProcessRequestHeader {
  std::uint64_t task;  // the ProcessTask's address
  std::uint64_t size;  // payload bytes that follow
};

// Bytes read from a socket and not yet used. Each side reads as much as is there,
// so one call takes a message's header, its payload and often the next message:
// where a system call is dear (0.9 µs on a paravirtualised VM), reading each part
// exactly costs calls, and one that finds nothing. A part as large as the inbox is
// read straight into its destination instead.
class Inbox {
 public:
  static constexpr std::size_t kCapacity = 16 << 10;
  // Copies what it holds into [data, data + size), advancing both, and says what the
  // reader does next: nothing (filled), read the rest straight into `data` (as large
  // as the inbox or more), or read more into space() and call again.
  enum class Next { filled, direct, refill };
  Next fill(char*& data, std::size_t& size);
  // Where the next read goes, and how much it brought.
  std::span<std::byte> space();
  void received(std::size_t n) { end_ += n; }
  void clear() { begin_ = end_ = 0; }
  // Whether it holds two whole requests or more, after taking in what `fd` has,
  // without waiting, if it held fewer.
  bool two_requests_waiting(int fd);

 private:
  std::array<std::byte, kCapacity> bytes_;
  std::size_t begin_ = 0, end_ = 0;
};

class ProcessTaskError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// How a child ended, from its wait status: "exited with status 3", "was killed by
// signal 9 (Killed)".
std::string describe_wait_status(int status);

class ProcessPool {
 public:
  // Forks the spawner: construct before the program starts any thread. (Later
  // works with glibc, whose malloc is safe to use in the child of a threaded
  // process, and the tests rely on it; concbench itself forks first.)
  explicit ProcessPool(unsigned workers);
  // Stops taking tasks, fails those not done, closes the workers' sockets (they
  // exit), reaps the spawner and through it every worker. Idempotent.
  ~ProcessPool();
  void shutdown();
  ProcessPool(const ProcessPool&) = delete;
  ProcessPool& operator=(const ProcessPool&) = delete;

  unsigned workers() const { return static_cast<unsigned>(workers_.size()); }

  // The scheduling policy of the first live worker (SCHED_IDLE unless the system
  // refused it); nullopt without a live worker.
  std::optional<int> worker_policy() const;

  // Queues `task(payload)` for the next free worker. `done` runs on the pool's I/O
  // thread exactly once, with the result or the error; keep it short. Called on the
  // I/O thread of a pool that is shutting down, `done` runs before submit returns.
  void submit(ProcessTask task, Bytes payload, std::function<void(TaskResult)> done);

  // Blocking convenience for callers that are not on the I/O thread.
  TaskResult run(ProcessTask task, Bytes payload);

  // Asio form: completes with (exception_ptr, Bytes) on the handler's own executor,
  // so `co_await pool.async_run(t, p, asio::use_awaitable)` suspends a coroutine
  // and resumes it on its loop; a failed task rethrows ProcessTaskError there.
  template <class CompletionToken>
  auto async_run(ProcessTask task, Bytes payload, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::exception_ptr, Bytes)>(
        [this, task](auto handler, Bytes payload) {
          submit(task, std::move(payload), [complete = post_back(std::move(handler))](TaskResult result) mutable {
            if (result.ok())
              complete(std::exception_ptr{}, std::move(result.data));
            else
              complete(std::make_exception_ptr(ProcessTaskError(result.error)), Bytes{});
          });
        },
        token, std::move(payload));
  }

  // Process ids of the current workers (0 for a slot that could not be refilled),
  // and how many were replaced after dying.
  std::vector<pid_t> worker_pids() const;
  unsigned replacements() const;
  // CPU seconds the current workers have used (from /proc/PID/schedstat). The
  // parent's process CPU time does not include them.
  double worker_cpu_seconds() const;
  pid_t spawner_pid() const { return spawner_pid_; }

  // The loop and thread that carry the sockets. Work of others posted there shares
  // the thread, and is dropped at shutdown once the pool's own has finished.
  asio::io_context& io_context() { return context_; }
  std::thread::id io_thread_id() const { return io_thread_.get_id(); }

 private:
  struct Pending {
    ProcessTask task;
    Bytes payload;
    std::function<void(TaskResult)> done;
    ProcessRequestHeader header{};
  };
  // All of it is touched on the I/O thread only.
  struct Worker {
    Worker(asio::io_context& context, std::atomic<std::uint64_t>& started) : socket(context), started(started) {}
    pid_t pid = 0;
    asio::local::stream_protocol::socket socket;
    Inbox inbox;
    std::deque<Pending> sent;  // written or being written, replies due in this order
    std::atomic<std::uint64_t>& started;  // tasks the current process started, shared with it
    std::uint64_t replies = 0;             // replies received from the current process
    bool writing = false;
    unsigned generation = 0;  // bumped on replacement; stale completions check it
  };
  // Tasks at each worker, the running one included. A worker holds its replies
  // while two or more tasks wait behind it, so with four it sends one batch of
  // replies per three tasks when the pool has a backlog.
  static constexpr std::size_t kDepth = 4;

  // Hands queued tasks to workers with room; called whenever room or tasks appear.
  void pump();
  bool has_live_worker() const;
  // One per worker: completes tasks as replies arrive and replaces the worker
  // when its socket closes.
  asio::awaitable<void> read_replies(Worker& worker);
  // At shutdown, once no reader is left, ends the loop whatever else is queued on it.
  void stop_when_idle();
  asio::awaitable<bool> receive(Worker& worker, TaskResult& result);  // false: the worker is gone
  static asio::awaitable<bool> read_exact(Worker& worker, void* data, std::size_t size);
  // Asks the spawner for a fresh worker in `worker`'s place; returns how the old
  // one ended, in words. On failure the worker is left closed.
  std::string respawn(Worker& worker);
  static void fail_all(std::deque<Pending>& tasks, const std::string& error);

  struct Unmap {
    std::size_t bytes;
    void operator()(std::atomic<std::uint64_t>* p) const;
  };
  std::unique_ptr<std::atomic<std::uint64_t>[], Unmap> started_;  // per worker slot, shared with the workers
  int spawner_fd_ = -1;
  pid_t spawner_pid_ = 0;
  asio::io_context context_{1};
  std::deque<Pending> queue_;  // submitted, not yet at a worker; I/O thread only
  std::vector<std::unique_ptr<Worker>> workers_;
  mutable std::mutex pids_mutex_;  // worker pids are read from other threads
  unsigned replacements_ = 0;
  bool stopping_ = false;           // I/O thread only
  std::size_t live_readers_ = 0;    // I/O thread only, once it runs
  std::atomic<bool> closed_{false};  // set before the I/O thread stops
  asio::executor_work_guard<asio::io_context::executor_type> work_{context_.get_executor()};
  std::thread io_thread_;
};

}  // namespace concbench
