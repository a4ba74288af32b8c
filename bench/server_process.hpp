#pragma once
// The server fan_out talks to: concbench-server started as a child process on an
// ephemeral port of 127.0.0.1 the first time a benchmark needs it, or a server
// already running elsewhere (--target). The child is stopped when this object
// dies, and, should concbench itself die first, by the kernel (PR_SET_PDEATHSIG).
// A child that dies is started again once, with a line on stderr; after a second
// death every later use fails with the reason.
#include "workloads/fan_out/fan_out.hpp"

#include <sys/types.h>

#include <optional>
#include <string>

namespace concbench {

class ServerProcess {
 public:
  // `target`: a running server to use instead of a child; `threads`: the child's.
  ServerProcess(std::optional<fan_out::Target> target, unsigned threads);
  ~ServerProcess();  // stops the child: SIGTERM, then SIGKILL if it lingers
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Where to send requests; starts the child and waits until it answers on first
  // use, and again if it died since. Throws, with the reason, if it does not start or
  // answer, or has died twice.
  const fan_out::Target& target();
  std::string description() const;  // for the run's context

 private:
  void start();
  // Notices a child that has died: starts it again the first time, else remembers why.
  void check_child();
  // Reads the child's port from `out` (and closes it), then probes the server.
  fan_out::Target wait_until_serving(int out);

  std::optional<fan_out::Target> target_;
  bool external_;
  unsigned threads_;
  pid_t child_ = -1;
  bool restarted_ = false;
  std::optional<std::string> died_;  // set at the second death
};

// "http://HOST:PORT" with HOST an IPv4 address or a bracketed IPv6 one (no names:
// a benchmark should not measure DNS). nullopt if malformed.
std::optional<fan_out::Target> parse_target_url(std::string_view url);

}  // namespace concbench
