#include "bench/context.hpp"

#include "models/offload.hpp"
#include "workloads/cpu_hash/cpu_hash.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/version.hpp>
#include <oneapi/tbb/version.h>
#include <openssl/crypto.h>

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <future>
#include <sstream>
#include <thread>
#include <vector>

namespace concbench {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kSamples = 200;
// Pause between round trips so the other side has gone to sleep, as an offload
// target usually has: waking a sleeping core is the cost being measured.
constexpr auto kPause = std::chrono::microseconds(500);

double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double median(std::vector<double> samples) {
  std::nth_element(samples.begin(), samples.begin() + samples.size() / 2, samples.end());
  return samples[samples.size() / 2];
}

template <class RoundTrip>
double median_us(RoundTrip round_trip) {
  std::vector<double> samples;
  for (int i = 0; i < kSamples; ++i) {
    std::this_thread::sleep_for(kPause);
    auto start = Clock::now();
    round_trip();
    samples.push_back(micros(Clock::now() - start));
  }
  return median(std::move(samples));
}

// The same, timed from a coroutine on the event loop, as blocking_stall offloads:
// `round_trip` hands work away and the coroutine resumes on the loop.
template <class RoundTrip>
asio::awaitable<double> median_on_loop_us(RoundTrip round_trip) {
  asio::steady_timer pause(co_await asio::this_coro::executor);
  std::vector<double> samples;
  for (int i = 0; i < kSamples; ++i) {
    pause.expires_after(kPause);
    co_await pause.async_wait(asio::use_awaitable);
    auto start = Clock::now();
    co_await round_trip();
    samples.push_back(micros(Clock::now() - start));
  }
  co_return median(std::move(samples));
}

double post_ns() {
  constexpr int kPosts = 200000;
  asio::io_context context{1};
  int ran = 0;
  auto start = Clock::now();
  for (int i = 0; i < kPosts; ++i) asio::post(context, [&ran] { ++ran; });
  context.run();
  return micros(Clock::now() - start) * 1000.0 / ran;
}

// Two cores this process may run on, for the round trips that must cross cores.
struct Cores {
  int here, there;
};

std::optional<Cores> two_cores() {
  cpu_set_t allowed;
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) return std::nullopt;
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE && cpus.size() < 2; ++cpu)
    if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
  if (cpus.size() < 2) return std::nullopt;
  return Cores{cpus[0], cpus[1]};
}

void pin_to(int cpu) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  ::sched_setaffinity(0, sizeof one, &one);
}

// Pins the calling thread to `cpu` (if any) for its lifetime, then restores it.
class Pinned {
 public:
  explicit Pinned(std::optional<int> cpu) : pinned_(cpu && ::sched_getaffinity(0, sizeof saved_, &saved_) == 0) {
    if (pinned_) pin_to(*cpu);
  }
  ~Pinned() {
    if (pinned_) ::sched_setaffinity(0, sizeof saved_, &saved_);
  }
  Pinned(const Pinned&) = delete;
  Pinned& operator=(const Pinned&) = delete;

 private:
  cpu_set_t saved_;
  bool pinned_;
};

std::optional<int> here(const std::optional<Cores>& cores) {
  return cores ? std::optional(cores->here) : std::nullopt;
}

// A post to a sleeping event-loop thread, which wakes the sleeping caller. With
// `cores`, the two threads sit on different cores; without, where the scheduler
// puts them (often the same core, handing over without any wake-up of a core).
double thread_rtt_us(std::optional<Cores> cores) {
  asio::io_context context{1};
  auto work = asio::make_work_guard(context);
  std::thread loop([&] {
    if (cores) pin_to(cores->there);
    context.run();
  });
  Pinned pinned(here(cores));
  double result = median_us([&context] {
    std::promise<void> done;
    asio::post(context, [&done] { done.set_value(); });
    done.get_future().wait();
  });
  work.reset();
  loop.join();
  return result;
}

// One byte to a forked echo process and back, placed as thread_rtt_us places its
// thread. The child only reads, writes and exits, which is safe in a child of a
// multi-threaded process.
double pipe_rtt_us(std::optional<Cores> cores) {
  int to_child[2], from_child[2];
  if (::pipe(to_child) != 0) return -1;
  if (::pipe(from_child) != 0) {
    ::close(to_child[0]);
    ::close(to_child[1]);
    return -1;
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    if (cores) pin_to(cores->there);
    ::close(to_child[1]);  // or it would never read EOF
    ::close(from_child[0]);
    char byte;
    while (::read(to_child[0], &byte, 1) == 1 && ::write(from_child[1], &byte, 1) == 1) {
    }
    ::_exit(0);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  double result = -1;
  bool echoed = pid > 0;
  if (echoed) {
    Pinned pinned(here(cores));
    result = median_us([&] {
      char byte = 'x';
      echoed = echoed && ::write(to_child[1], &byte, 1) == 1 && ::read(from_child[0], &byte, 1) == 1;
    });
  }
  if (!echoed) result = -1;
  ::close(to_child[1]);  // the child reads EOF and exits
  ::close(from_child[0]);
  if (pid > 0) ::waitpid(pid, nullptr, 0);
  return result;
}

Bytes echo(std::span<const std::byte> payload) { return {payload.begin(), payload.end()}; }

double sha256_bytes_per_s() {
  constexpr std::size_t kBlock = 16384;
  std::uint64_t blocks = 0;
  auto start = Clock::now();
  while (Clock::now() - start < std::chrono::milliseconds(200)) {
    cpu_hash::hash_range(kBlock, blocks, 64);
    blocks += 64;
  }
  return static_cast<double>(blocks * kBlock) / std::chrono::duration<double>(Clock::now() - start).count();
}

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::string command_output(const std::string& command) {
  std::string out;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, pipe)) out += buf;
    if (::pclose(pipe) != 0) return "";
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string git_commit() {
  const std::string git = "git -C '" CONCBENCH_SOURCE_DIR "' ";
  std::string commit = command_output(git + "rev-parse --short=12 HEAD 2>/dev/null");
  if (commit.empty()) return "unknown";
  if (!command_output(git + "status --porcelain --untracked-files=no 2>/dev/null").empty()) commit += "+dirty";
  return commit;
}

// A scheduling policy as sched(7) names it.
std::string policy_name(int policy) {
  switch (policy) {
    case SCHED_OTHER: return "SCHED_OTHER";
    case SCHED_BATCH: return "SCHED_BATCH";
    case SCHED_IDLE: return "SCHED_IDLE";
    case SCHED_FIFO: return "SCHED_FIFO";
    case SCHED_RR: return "SCHED_RR";
    default: return "policy " + std::to_string(policy);
  }
}

std::string fixed(double value, int digits) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(digits);
  out << value;
  return out.str();
}

}  // namespace

Calibration calibrate(Runtimes& runtimes) {
  Calibration c{};
  c.post_ns = post_ns();
  c.thread_rtt_us = thread_rtt_us(std::nullopt);
  c.pipe_rtt_us = pipe_rtt_us(std::nullopt);
  if (auto cores = two_cores()) {
    c.thread_rtt_cross_core_us = thread_rtt_us(cores);
    c.pipe_rtt_cross_core_us = pipe_rtt_us(cores);
  }
  c.thread_pool_rtt_us = runtimes.event_loop.run(median_on_loop_us([&]() -> asio::awaitable<void> {
    co_await async_offload(runtimes.thread_pool, [] { return 0; }, asio::use_awaitable);
  }));
  // A failed task rethrows ProcessTaskError, which ends the calibration.
  c.process_pool_rtt_us = runtimes.event_loop.run(median_on_loop_us([&]() -> asio::awaitable<void> {
    co_await runtimes.process_pool.async_run(echo, {}, asio::use_awaitable);
  }));
  c.sha256_16k_bytes_per_s = sha256_bytes_per_s();
  c.process_worker_policy = runtimes.process_pool.worker_policy();
  return c;
}

void add_context(const Options& options, const Calibration* c) {
  using benchmark::AddCustomContext;
  AddCustomContext("cpu_model", cpu_model());
  AddCustomContext("cores", std::to_string(std::thread::hardware_concurrency()));
  AddCustomContext("workers", std::to_string(options.workers));
  AddCustomContext("suite", std::string(suite_name(options.suite)));
  AddCustomContext("repetitions", std::to_string(options.repetitions));
  AddCustomContext("interleaved", options.interleaved ? "true" : "false");
  AddCustomContext("compiler", CONCBENCH_COMPILER);
  AddCustomContext("cxx_flags", CONCBENCH_CXX_FLAGS);
  AddCustomContext("build_type", CONCBENCH_BUILD_TYPE);
  AddCustomContext("boost_version", std::to_string(BOOST_VERSION / 100000) + "." +
                                        std::to_string(BOOST_VERSION / 100 % 1000) + "." +
                                        std::to_string(BOOST_VERSION % 100));
  AddCustomContext("onetbb_version", TBB_runtime_version());
  AddCustomContext("openssl_version", OpenSSL_version(OPENSSL_VERSION));
  AddCustomContext("benchmark_version", CONCBENCH_BENCHMARK_VERSION);
  AddCustomContext("git_commit", git_commit());
  if (!c) return;
  AddCustomContext("calib_post_ns", fixed(c->post_ns, 1));
  AddCustomContext("calib_thread_rtt_us", fixed(c->thread_rtt_us, 2));
  AddCustomContext("calib_pipe_rtt_us", fixed(c->pipe_rtt_us, 2));
  if (c->thread_rtt_cross_core_us > 0) {  // not on a single core
    AddCustomContext("calib_thread_rtt_cross_core_us", fixed(c->thread_rtt_cross_core_us, 2));
    AddCustomContext("calib_pipe_rtt_cross_core_us", fixed(c->pipe_rtt_cross_core_us, 2));
  }
  AddCustomContext("calib_thread_pool_rtt_us", fixed(c->thread_pool_rtt_us, 2));
  AddCustomContext("calib_process_pool_rtt_us", fixed(c->process_pool_rtt_us, 2));
  AddCustomContext("calib_sha256_16k_bytes_per_s", fixed(c->sha256_16k_bytes_per_s, 0));
  if (c->process_worker_policy) AddCustomContext("process_worker_policy", policy_name(*c->process_worker_policy));
}

}  // namespace concbench
