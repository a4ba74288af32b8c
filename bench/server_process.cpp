#include "bench/server_process.hpp"

#include "workloads/fan_out/fan_out_http.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace concbench {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kStartTimeout = 10s;
constexpr std::string_view kListening = "concbench-server listening on ";

std::optional<std::uint16_t> parse_port(std::string_view text) {
  unsigned port = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (error != std::errc{} || end != text.data() + text.size() || port == 0 || port > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(port);
}

// The first line the child writes, or what it wrote before it stopped or the time ran out.
std::string read_line(int fd, Clock::time_point deadline) {
  std::string line;
  char c;
  while (line.find('\n') == std::string::npos) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    if (::read(fd, &c, 1) != 1) break;
    line += c;
  }
  if (!line.empty() && line.back() == '\n') line.pop_back();
  return line;
}

}  // namespace

std::optional<fan_out::Target> parse_target_url(std::string_view url) {
  constexpr std::string_view scheme = "http://";
  if (url.substr(0, scheme.size()) != scheme) return std::nullopt;
  std::string_view rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  const auto colon = rest.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = rest.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const auto port = parse_port(rest.substr(colon + 1));
  fan_out::Target target{std::string(host), port.value_or(0)};
  if (!port) return std::nullopt;
  try {
    fan_out::endpoint_of(target);
  } catch (const std::invalid_argument&) {
    return std::nullopt;
  }
  return target;
}

ServerProcess::ServerProcess(std::optional<fan_out::Target> target, unsigned threads)
    : target_(std::move(target)), external_(target_.has_value()), threads_(threads) {}

ServerProcess::~ServerProcess() {
  if (child_ <= 0) return;
  ::kill(child_, SIGTERM);
  for (auto deadline = Clock::now() + 2s; Clock::now() < deadline; std::this_thread::sleep_for(5ms))
    if (::waitpid(child_, nullptr, WNOHANG) == child_) return;
  ::kill(child_, SIGKILL);
  ::waitpid(child_, nullptr, 0);
}

const fan_out::Target& ServerProcess::target() {
  if (child_ > 0) check_child();
  if (died_) throw std::runtime_error(*died_);
  if (!target_) {
    try {
      start();
    } catch (const std::exception& e) {
      // A replacement that does not come up is the second death: no third start.
      if (restarted_) died_ = std::string("concbench-server did not come back after it died: ") + e.what();
      throw;
    }
  }
  return *target_;
}

void ServerProcess::check_child() {
  int status = 0;
  if (::waitpid(child_, &status, WNOHANG) != child_) return;
  std::string death = "concbench-server (pid " + std::to_string(child_) + ") died: ";
  if (WIFSIGNALED(status))
    death += "signal " + std::to_string(WTERMSIG(status)) + " (" + ::strsignal(WTERMSIG(status)) + ")";
  else
    death += "exit status " + std::to_string(WEXITSTATUS(status));
  child_ = -1;
  target_.reset();
  if (restarted_) {
    died_ = death;
    std::cerr << "concbench: " << death << " again; the remaining fan_out cells fail" << std::endl;
    return;
  }
  restarted_ = true;
  std::cerr << "concbench: " << death << "; starting it again" << std::endl;
}

std::string ServerProcess::description() const {
  if (external_) return "a server already running at " + target_->host + ":" + std::to_string(target_->port) + " (--target)";
  return "concbench-server --threads=" + std::to_string(threads_) + ", a child process on 127.0.0.1";
}

void ServerProcess::start() {
  const auto path = std::filesystem::read_symlink("/proc/self/exe").parent_path() / "concbench-server";
  if (::access(path.c_str(), X_OK) != 0)
    throw std::runtime_error("fan_out needs " + path.string() + ", built beside concbench; or pass --target=URL");
  std::vector<std::string> args{path.string(), "--port=0", "--threads=" + std::to_string(threads_)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::system_error(errno, std::system_category(), "pipe2");
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    ::close(out[0]);
    ::close(out[1]);
    throw std::system_error(error, std::system_category(), "fork");
  }
  if (pid == 0) {
    // Only async-signal-safe calls until exec: the parent has other threads.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    ::dup2(out[1], STDOUT_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  child_ = pid;
  ::close(out[1]);
  try {
    target_ = wait_until_serving(out[0]);
  } catch (...) {
    // A child that did not come up is stopped now, so that a later cell's retry
    // does not leave it running beside a new one.
    ::kill(child_, SIGKILL);
    ::waitpid(child_, nullptr, 0);
    child_ = -1;
    throw;
  }
}

fan_out::Target ServerProcess::wait_until_serving(int out) {
  const std::string line = read_line(out, Clock::now() + kStartTimeout);
  ::close(out);
  const auto colon = line.rfind(':');
  const auto port = line.substr(0, kListening.size()) == kListening && colon != std::string::npos
                        ? parse_port(std::string_view(line).substr(colon + 1))
                        : std::nullopt;
  if (!port)
    throw std::runtime_error("concbench-server did not start (" +
                             (line.empty() ? std::string("no output") : "it said: " + line) + ")");
  fan_out::Target target{"127.0.0.1", *port};

  // Listening is not serving: one request proves it answers.
  const auto probe = fan_out::reference({1, 1, 0, 64, 0, fan_out::Group::settled});
  fan_out::Tally tally;
  fan_out::BlockingConnection connection(probe.p, fan_out::endpoint_of(target));
  if (connection.fetch(tally, probe, 0, Clock::now() + kStartTimeout) != fan_out::Ending::ok)
    throw std::runtime_error("concbench-server on port " + std::to_string(*port) + " does not answer");
  return target;
}

}  // namespace concbench
