#include "bench/context.hpp"

#include "workloads/cpu_hash/cpu_hash.hpp"

#include <boost/asio/post.hpp>
#include <boost/version.hpp>
#include <oneapi/tbb/version.h>
#include <openssl/crypto.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
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

template <class RoundTrip>
double median_us(RoundTrip round_trip) {
  std::vector<double> samples;
  for (int i = 0; i < kSamples; ++i) {
    std::this_thread::sleep_for(kPause);
    auto start = Clock::now();
    round_trip();
    samples.push_back(micros(Clock::now() - start));
  }
  std::nth_element(samples.begin(), samples.begin() + kSamples / 2, samples.end());
  return samples[kSamples / 2];
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

double thread_rtt_us(EventLoop& loop) {
  return median_us([&loop] {
    std::promise<void> done;
    asio::post(loop.context(), [&done] { done.set_value(); });
    done.get_future().wait();
  });
}

// A forked echo process; it only reads, writes and exits, which is safe in a child
// of a multi-threaded process.
double pipe_rtt_us() {
  int to_child[2], from_child[2];
  if (::pipe(to_child) != 0) return -1;
  if (::pipe(from_child) != 0) {
    ::close(to_child[0]);
    ::close(to_child[1]);
    return -1;
  }
  pid_t pid = ::fork();
  if (pid == 0) {
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
  c.thread_rtt_us = thread_rtt_us(runtimes.event_loop);
  c.pipe_rtt_us = pipe_rtt_us();
  c.process_pool_rtt_us = median_us([&] {
    if (TaskResult r = runtimes.process_pool.run(echo, {}); !r.ok())
      throw std::runtime_error("the process pool failed an empty task: " + r.error);
  });
  c.sha256_16k_bytes_per_s = sha256_bytes_per_s();
  return c;
}

void add_context(const Options& options, const Calibration* c) {
  using benchmark::AddCustomContext;
  AddCustomContext("cpu_model", cpu_model());
  AddCustomContext("cores", std::to_string(std::thread::hardware_concurrency()));
  AddCustomContext("workers", std::to_string(options.workers));
  AddCustomContext("suite", std::string(suite_name(options.suite)));
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
  AddCustomContext("calib_process_pool_rtt_us", fixed(c->process_pool_rtt_us, 2));
  AddCustomContext("calib_sha256_16k_bytes_per_s", fixed(c->sha256_16k_bytes_per_s, 0));
}

}  // namespace concbench
