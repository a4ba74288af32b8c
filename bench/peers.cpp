#include "bench/peers.hpp"

#include "bench/harness.hpp"
#include "models/process_pool.hpp"

#include "workloads/cpu_hash/cpu_hash.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace concbench::peers {

namespace {

using Clock = std::chrono::steady_clock;

// The last few lines of what a peer wrote to stderr: enough to say why it failed.
std::string last_words(const std::string& err) {
  std::vector<std::string> lines;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  constexpr std::size_t kKept = 6;
  std::string out;
  for (std::size_t i = lines.size() > kKept ? lines.size() - kKept : 0; i < lines.size(); ++i)
    out.append(out.empty() ? "" : "\n").append(lines[i]);
  return out.empty() ? "(nothing on stderr)" : out;
}

// Forks and execs `argv` with `env`, stdout and stderr on pipes, stdin on /dev/null,
// in a process group of its own. Everything the child needs is built before the fork:
// after it, a child of a process with threads may only make system calls.
struct Child {
  pid_t pid;
  int out, err;
};

Child spawn(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::vector<char*> argv, envp;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // Ours win over inherited ones of the same name (a runtime reads the first).
  auto overridden = [&env](std::string_view entry) {
    for (const auto& e : env)
      if (entry.substr(0, entry.find('=') + 1) == e.substr(0, e.find('=') + 1)) return true;
    return false;
  };
  for (char** e = environ; *e; ++e)
    if (!overridden(*e)) envp.push_back(*e);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    throw std::system_error(errno, std::generic_category(), "pipe");
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    // Inherited by every thread and child of the peer: its sleeps and timed waits
    // end when asked, as the C++ models' timerfds do, not up to 50 µs later.
    ::prctl(PR_SET_TIMERSLACK, 1UL);
    const int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    ::syscall(SYS_close_range, 3U, ~0U, 0U);  // none of concbench's sockets and pipes
    ::execvpe(argv[0], argv.data(), envp.data());
    const char* why = ::strerror(errno);
    (void)!::write(STDERR_FILENO, "cannot run it: ", 15);
    (void)!::write(STDERR_FILENO, why, std::strlen(why));
    ::_exit(127);
  }
  const int error = errno;
  ::close(out[1]);
  ::close(err[1]);
  if (pid < 0) {
    ::close(out[0]);
    ::close(err[0]);
    throw std::system_error(error, std::generic_category(), "fork");
  }
  return {pid, out[0], err[0]};
}

// Where the peers' sources lie: the checkout concbench was built from, unless
// CONCBENCH_PEERS_DIR names another (the tests put stand-ins there).
std::string peers_dir() {
  if (const char* dir = std::getenv("CONCBENCH_PEERS_DIR"); dir && *dir) return dir;
#ifdef CONCBENCH_SOURCE_DIR
  return std::string(CONCBENCH_SOURCE_DIR) + "/peers";
#else
  return "peers";
#endif
}

// Where concbench itself lies: the Go peer is built beside it.
std::string own_dir() {
  std::error_code error;
  return std::filesystem::read_symlink("/proc/self/exe", error).parent_path().string();
}

// The best of three runs of the peer's `sha256` on 16 KiB blocks, a one-off figure
// like openssl speed's; throws if its sum is not the kernel's.
double time_sha256(const Peer& peer) {
  constexpr std::uint64_t kChunk = 16384, kBytes = std::uint64_t{8} << 20;
  static const std::uint64_t want = cpu_hash::hash_range(kChunk, 0, kBytes / kChunk).digest_sum[0];
  double best = 0;
  for (int i = 0; i < 3; ++i) {
    const auto reply = run(peer,
                           {"sha256", "--corpus", corpus_file(), "--chunk-bytes", std::to_string(kChunk),
                            "--total-bytes", std::to_string(kBytes)},
                           std::chrono::seconds(60));
    const std::string line = reply.lines.empty() ? "" : reply.lines.front();
    const auto w = words(line);
    if (w.size() != 4 || w[0] != "sha256") throw std::runtime_error("unexpected sha256 reply: " + line);
    if (parse_u64(w[1], line) != kBytes || parse_u64(w[3], line) != want)
      throw std::runtime_error("its SHA-256 sum differs from concbench's kernel: " + line);
    const double seconds = std::stod(w[2]);
    if (!(seconds > 0)) throw std::runtime_error("sha256 took no time: " + line);
    best = std::max(best, static_cast<double>(kBytes) / seconds);
  }
  return best;
}

// A peer is there when it answers `version`; else `missing` says what to install.
Peer discover(Peer peer, const std::string& install) {
  try {
    const Reply reply = run(peer, {"version"}, std::chrono::seconds(20));
    if (reply.lines.empty()) throw std::runtime_error("it gave no version");
    peer.version = reply.lines.front();
  } catch (const std::exception& e) {
    peer.missing = install + " (" + last_words(e.what()) + ")";
    return peer;
  }
  try {
    peer.sha256_bytes_per_s = time_sha256(peer);
  } catch (const std::exception& e) {
    peer.sha256_error = e.what();
  }
  return peer;
}

}  // namespace

const std::vector<Peer>& all() {
  static const std::vector<Peer> peers = [] {
    const std::string dir = peers_dir();
    Peer asyncio, go, node;
    asyncio.name = "asyncio";
    asyncio.command = {"/usr/bin/python3", dir + "/python/main.py"};
    asyncio.offloads = {"threads", "processes"};
    asyncio.cpu_guidance = "processes";  // ProcessPoolExecutor for CPU-bound work,
    asyncio.sleep_guidance = "threads";  // asyncio.to_thread for blocking calls
    go.name = "go";
    go.command = {own_dir() + "/concbench-peer-go"};
    go.goroutines = true;
    node.name = "node";
    node.command = {"node", dir + "/node/main.mjs"};
    node.offloads = {"threads"};
    node.cpu_guidance = "threads";  // worker_threads for CPU work; Node code has no blocking calls to offload
    return std::vector<Peer>{
        discover(asyncio, "needs /usr/bin/python3 with aiohttp: the Debian package python3-aiohttp"),
        discover(go, "needs the Debian package golang-go when concbench is built"),
        discover(node, "needs node: the Debian package nodejs"),
    };
  }();
  return peers;
}

Reply run(const Peer& peer, const std::vector<std::string>& args, std::chrono::seconds timeout, unsigned workers) {
  std::vector<std::string> argv = peer.command;
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string what = "peer " + peer.name + " " + (args.empty() ? "" : args.front());
  std::vector<std::string> env;
  if (peer.goroutines && workers > 0) env.push_back("GOMAXPROCS=" + std::to_string(workers));
  const Child child = spawn(argv, env);
  std::string out, err;
  bool timed_out = false;
  pollfd fds[2] = {{child.out, POLLIN, 0}, {child.err, POLLIN, 0}};
  std::string* sinks[2] = {&out, &err};
  const auto deadline = Clock::now() + timeout;
  for (int open = 2; open > 0;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    if (::poll(fds, 2, static_cast<int>(left)) < 0 && errno != EINTR) {
      timed_out = true;  // cannot watch it any more: treat it as stuck
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char chunk[65536];
      const ssize_t n = ::read(fds[i].fd, chunk, sizeof chunk);
      if (n > 0) {
        sinks[i]->append(chunk, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      }
    }
  }
  if (timed_out) ::kill(-child.pid, SIGKILL);
  for (const pollfd& p : fds)
    if (p.fd >= 0) ::close(p.fd);
  // A peer that closed its output may still run: it gets until the deadline to end.
  int status = 0;
  rusage usage{};
  for (pid_t reaped = 0; reaped != child.pid;) {
    reaped = ::wait4(child.pid, &status, WNOHANG, &usage);
    if (reaped < 0 && errno != EINTR) break;
    if (reaped == 0 && Clock::now() > deadline && !timed_out) {
      timed_out = true;
      ::kill(-child.pid, SIGKILL);
    }
    if (reaped == 0) ::usleep(1000);
  }
  // Whatever the peer left behind (a pool's workers) goes with it.
  ::kill(-child.pid, SIGKILL);
  if (timed_out)
    throw std::runtime_error(what + " ran past its " + std::to_string(timeout.count()) + " s and was killed:\n" +
                             last_words(err));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(what + " " + describe_wait_status(status) + ":\n" + last_words(err));
  Reply reply;
  reply.peak_rss_bytes = static_cast<std::uint64_t>(usage.ru_maxrss) * 1024;
  std::istringstream lines(out);
  bool ended = false;
  for (std::string line; std::getline(lines, line);) {
    if (line == "end") {
      ended = true;
      break;
    }
    reply.lines.push_back(std::move(line));
  }
  if (!ended) throw std::runtime_error(what + " replied without its last line, end:\n" + last_words(err));
  return reply;
}

std::string context_json() {
  std::string out;
  for (const Peer& peer : all()) {
    out.append(out.empty() ? "{" : ", ").append("\"" + peer.name + "\": {");
    if (!peer.missing.empty()) {
      out.append("\"missing\": \"" + escape_json(peer.missing) + "\"}");
      continue;
    }
    out.append("\"version\": \"" + escape_json(peer.version) + "\", ");
    if (!peer.sha256_error.empty())
      out.append("\"sha256_error\": \"" + escape_json(peer.sha256_error) + "\"}");
    else
      out.append("\"sha256_16k_bytes_per_s\": " + std::to_string(static_cast<std::uint64_t>(peer.sha256_bytes_per_s)) +
                 "}");
  }
  return out.empty() ? "{}" : out + "}";
}

const std::string& corpus_file() {
  static const TempFile file(std::string(reinterpret_cast<const char*>(cpu_hash::corpus().data()),
                                         cpu_hash::corpus().size()));
  return file.path();
}

TempFile::TempFile(const std::string& text) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/concbench-peer-XXXXXX";
  const int fd = ::mkstemp(pattern.data());
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "mkstemp " + pattern);
  path_ = pattern;
  for (std::size_t done = 0; done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = errno;
      ::close(fd);
      ::unlink(path_.c_str());
      throw std::system_error(error, std::generic_category(), "write " + path_);
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

TempFile::~TempFile() { ::unlink(path_.c_str()); }

std::uint64_t Ids::end(std::uint64_t id, const std::string& line) {
  if (id >= seen_.size() || seen_[id]) bad_line(peer_, line, "request unknown or ended twice");
  seen_[id] = true;
  return id;
}

void bad_line(const Peer& peer, const std::string& line, const std::string& why) {
  throw std::runtime_error("peer " + peer.name + ": " + why + ": " + line);
}

std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  for (std::string word; in >> word;) out.push_back(std::move(word));
  return out;
}

std::uint64_t parse_u64(const std::string& word, const std::string& line) {
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(word.data(), word.data() + word.size(), value);
  if (error != std::errc{} || end != word.data() + word.size())
    throw std::runtime_error("peer reply: '" + word + "' is not a whole number, in: " + line);
  return value;
}

}  // namespace concbench::peers
