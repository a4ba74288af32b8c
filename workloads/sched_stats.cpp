#include "workloads/sched_stats.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

namespace concbench {

namespace {

// schedstat: time on a CPU, time waiting on a run queue (both ns), timeslices run.
// status: a line "nonvoluntary_ctxt_switches:\tN". nullopt if either is missing.
std::optional<SchedStats> read_thread(const std::filesystem::path& task) {
  std::ifstream schedstat(task / "schedstat");
  std::uint64_t on_cpu_ns = 0, waited_ns = 0;
  if (!(schedstat >> on_cpu_ns >> waited_ns)) return std::nullopt;
  std::ifstream status(task / "status");
  for (std::string line; std::getline(status, line);) {
    constexpr std::string_view kKey = "nonvoluntary_ctxt_switches:";
    if (line.starts_with(kKey))
      return SchedStats{std::chrono::nanoseconds(waited_ns), std::stoull(line.substr(kKey.size()))};
  }
  return std::nullopt;
}

}  // namespace

pid_t this_thread_tid() {
  thread_local const pid_t tid = ::gettid();
  return tid;
}

void note_this_thread(std::vector<pid_t>& tids) {
  const pid_t tid = this_thread_tid();
  if (std::find(tids.begin(), tids.end(), tid) == tids.end()) tids.push_back(tid);
}

SchedSnapshot SchedSnapshot::take() {
  SchedSnapshot snapshot;
  std::error_code ignored;  // a thread may end while the folder is read
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ignored)) {
    const std::string name = task.path().filename();
    if (auto stats = read_thread(task.path())) snapshot.threads_[static_cast<pid_t>(std::stol(name))] = *stats;
  }
  return snapshot;
}

std::optional<SchedStats> SchedSnapshot::since(const SchedSnapshot& before, const std::vector<pid_t>& tids) const {
  SchedStats total;
  for (pid_t tid : tids) {
    auto now = threads_.find(tid);
    if (now == threads_.end()) return std::nullopt;
    SchedStats start;
    if (auto then = before.threads_.find(tid); then != before.threads_.end()) start = then->second;
    total.runq_wait += now->second.runq_wait - start.runq_wait;
    total.involuntary_switches += now->second.involuntary_switches - start.involuntary_switches;
  }
  return total;
}

}  // namespace concbench
