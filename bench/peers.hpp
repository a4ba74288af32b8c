#pragma once
// Peers: fan_out and blocking_stall written in Python asyncio, Go and Node, run
// as child processes the way wrk is (the protocol: peers/README.md). concbench
// starts each run, reads back every request, and verifies and counts them with the
// same code as its own models, so a peer's figures sit in the same tables.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace concbench::peers {

struct Peer {
  std::string name;                  // asyncio, go, node; its model is "peer_" + name
  std::vector<std::string> command;  // what runs it, before the sub-command
  std::string version;               // what it said it is
  std::string missing;               // why it cannot run here; empty when it can
  bool goroutines = false;           // Go: no loop to offload from; runs once per GOMAXPROCS
  // blocking_stall's offload targets ("threads", "processes"): all it has (--full), and
  // where its language's guidance sends CPU work and a blocking call (empty: nowhere).
  std::vector<std::string> offloads;
  std::string cpu_guidance, sleep_guidance;
  // Its language's SHA-256 on 16 KiB blocks, checked against concbench's kernel: what
  // sizes its kind:cpu work, so that work_us means as long in every language.
  double sha256_bytes_per_s = 0;
  std::string sha256_error;
  std::string model() const { return "peer_" + name; }
};

// Every peer, found (or not) and its SHA-256 timed on first call: a missing
// toolchain is a reason, not an error.
const std::vector<Peer>& all();

// One run of `peer <args...>`, with GOMAXPROCS=`workers` for Go: the reply's lines
// before `end`. Throws, with the peer's last words on stderr, when it cannot start,
// exits non-zero, outlives `timeout` (then its whole process group is killed) or
// replies without `end`.
struct Reply {
  std::vector<std::string> lines;
  std::uint64_t peak_rss_bytes = 0;  // the peer's resident peak (its largest process)
};
Reply run(const Peer& peer, const std::vector<std::string>& args, std::chrono::seconds timeout,
          unsigned workers = 0);

// The run's context entry "peers", a JSON object: each peer's version and SHA-256
// speed, or why it did not run.
std::string context_json();

// The cpu_hash corpus in a file, for peers to read: written on first call, removed at exit.
const std::string& corpus_file();

// A file of `text`, removed when this dies: a peer's input.
class TempFile {
 public:
  explicit TempFile(const std::string& text);
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The ids of a reply's requests: `end` throws for one out of range or ended twice.
class Ids {
 public:
  Ids(const Peer& peer, std::uint64_t count) : peer_(peer), seen_(count) {}
  std::uint64_t end(std::uint64_t id, const std::string& line);

 private:
  const Peer& peer_;
  std::vector<bool> seen_;
};
[[noreturn]] void bad_line(const Peer& peer, const std::string& line, const std::string& why);

// The words of a reply line; `parse_u64` throws on anything but a whole number.
std::vector<std::string> words(const std::string& line);
std::uint64_t parse_u64(const std::string& word, const std::string& line);

}  // namespace concbench::peers
