// concbench: registers every workload x model x parameter set with Google
// Benchmark, verifies every result, and records the machine's context.
#include "bench/context.hpp"
#include "bench/harness.hpp"
#include "bench/peers.hpp"
#include "bench/flags.hpp"
#include "bench/server_process.hpp"

#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string_view>
#include <thread>

namespace {

using namespace concbench;

void print_own_help() {
  std::cout << "concbench: the same workloads on several concurrency models, every result verified.\n\n"
               "concbench's own flags:\n"
               "  --workers=N          threads or processes for fibers_mt, thread_pool and process_pool\n"
               "                       (default: all cores, here "
            << std::thread::hardware_concurrency()
            << ")\n"
               "  --suite=NAME         quick | default | full: which parameter sets run (default: default)\n"
               "  --models=WHICH       all | parallel (only the models that follow --workers; default: all)\n"
               "  --target=URL         fan_out's server, http://HOST:PORT with HOST an IP address (default:\n"
               "                       concbench-server started beside concbench on 127.0.0.1)\n"
               "  --help               this text\n\n"
               "Google Benchmark's flags (for example --benchmark_filter=REGEX, --benchmark_out=FILE\n"
               "--benchmark_out_format=json, --benchmark_repetitions=N, --benchmark_min_time=SECONDS,\n"
               "--benchmark_list_tests=true):\n";
  benchmark::PrintDefaultHelp();
}

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "concbench: " << message << " (see --help)\n";
  std::exit(2);
}

std::optional<unsigned> parse_count(std::string_view text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value == 0 || value > 1024) return std::nullopt;
  return value;
}

// Takes concbench's own flags out of argv and leaves the rest to Google Benchmark.
Options parse_own_flags(int& argc, char** argv) {
  Options options;
  options.workers = std::max(1u, std::thread::hardware_concurrency());
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value_of = [&](std::string_view flag) { return flag_value(arg, flag, usage_error); };
    if (arg == "--help" || arg == "-h") {
      print_own_help();
      std::exit(0);
    } else if (auto v = value_of("--workers")) {
      auto n = parse_count(*v);
      if (!n) usage_error("--workers must be a whole number from 1 to 1024, not '" + std::string(*v) + "'");
      options.workers = *n;
    } else if (auto v = value_of("--suite")) {
      auto suite = parse_suite(*v);
      if (!suite) usage_error("--suite must be quick, default or full, not '" + std::string(*v) + "'");
      options.suite = *suite;
    } else if (auto v = value_of("--models")) {
      if (*v != "all" && *v != "parallel") usage_error("--models must be all or parallel, not '" + std::string(*v) + "'");
      options.parallel_only = *v == "parallel";
    } else if (auto v = value_of("--target")) {
      if (!parse_target_url(*v)) usage_error("--target must be http://HOST:PORT with HOST an IP address, not '" + std::string(*v) + "'");
      options.target = *v;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  return options;
}

// The value of a Google Benchmark flag, read before Initialize() takes it out.
std::optional<std::string_view> benchmark_flag(int argc, char** argv, std::string_view flag) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == flag) return "true";
    if (arg.substr(0, flag.size()) == flag && arg.size() > flag.size() && arg[flag.size()] == '=')
      return arg.substr(flag.size() + 1);
  }
  return std::nullopt;
}

bool is_true(std::string_view value) { return value == "true" || value == "1" || value == "yes"; }

// The display reporter Google Benchmark would have made from --benchmark_format
// and --benchmark_color (concbench wraps it, so it makes its own).
std::unique_ptr<benchmark::BenchmarkReporter> display_reporter(int argc, char** argv) {
  auto format = benchmark_flag(argc, argv, "--benchmark_format").value_or("console");
  if (format == "json") return std::make_unique<benchmark::JSONReporter>();
  if (format == "csv") {
    // Deprecated in Google Benchmark 1.7, but still what its own --benchmark_format=csv makes.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    return std::make_unique<benchmark::CSVReporter>();
#pragma GCC diagnostic pop
  }
  if (format != "console") usage_error("--benchmark_format must be console, json or csv");
  auto color = benchmark_flag(argc, argv, "--benchmark_color").value_or("auto");
  bool colored = color == "auto" ? ::isatty(STDOUT_FILENO) != 0 : is_true(color) || color == "always";
  return std::make_unique<benchmark::ConsoleReporter>(colored ? benchmark::ConsoleReporter::OO_Color
                                                              : benchmark::ConsoleReporter::OO_None);
}

// Forwards to the display reporter and counts the runs that ended in an error, so
// that concbench can exit non-zero.
class ErrorCountingReporter : public benchmark::BenchmarkReporter {
 public:
  explicit ErrorCountingReporter(std::unique_ptr<benchmark::BenchmarkReporter> inner) : inner_(std::move(inner)) {}

  bool ReportContext(const Context& context) override {
    inner_->SetOutputStream(&GetOutputStream());
    inner_->SetErrorStream(&GetErrorStream());
    return inner_->ReportContext(context);
  }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs)
      if (run.error_occurred) ++errors;
    inner_->ReportRuns(runs);
  }
  void Finalize() override { inner_->Finalize(); }

  int errors = 0;

 private:
  std::unique_ptr<benchmark::BenchmarkReporter> inner_;
};

}  // namespace

int main(int argc, char** argv) {
  // Dies with whatever started it (scripts/bench, a test): a run nobody reads any more
  // would otherwise go on at full CPU, and its server and pool with it.
  const pid_t parent = ::getppid();
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent) return 1;
  Options options = parse_own_flags(argc, argv);
  // Read before Initialize() consumes the flags. A malformed value is left to
  // Initialize(), which rejects it.
  const bool listing = is_true(benchmark_flag(argc, argv, "--benchmark_list_tests").value_or("false"));
  if (auto text = benchmark_flag(argc, argv, "--benchmark_repetitions"))
    std::from_chars(text->data(), text->data() + text->size(), options.repetitions);
  options.interleaved =
      is_true(benchmark_flag(argc, argv, "--benchmark_enable_random_interleaving").value_or("false"));
  // Google Benchmark takes "inf" (and never ends) or "nan"; a run must end.
  if (auto text = benchmark_flag(argc, argv, "--benchmark_min_time")) {
    double seconds = 0;
    const auto parsed = std::from_chars(text->data(), text->data() + text->size(), seconds);
    if (parsed.ec == std::errc() && !(std::isfinite(seconds) && seconds > 0)) {
      std::cerr << "concbench: --benchmark_min_time must be a finite number of seconds above 0\n";
      return 2;
    }
  }
  ErrorCountingReporter reporter(display_reporter(argc, argv));
  benchmark::Initialize(&argc, argv, print_own_help);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;

  Runtimes runtimes(options.workers);  // forks the process pool before any thread starts
  std::optional<Calibration> calibration;
  try {
    if (!listing) calibration = calibrate(runtimes);
  } catch (const std::exception& e) {
    std::cerr << "concbench: calibration failed: " << e.what() << "\n";
    return 1;
  }
  add_context(options, calibration ? &*calibration : nullptr);
  if (!listing && !options.parallel_only) benchmark::AddCustomContext("peers", peers::context_json());

  register_cpu_hash(runtimes, options);
  // Listing does not calibrate; names do not depend on the speed.
  constexpr double kNominalSha256BytesPerSecond = 1.0e9;
  register_blocking_stall(runtimes, options,
                          calibration ? calibration->sha256_16k_bytes_per_s : kNominalSha256BytesPerSecond);

  // Started on first use; stopped when main returns (the kernel stops it if
  // concbench dies first). The server stands in for the network and a remote
  // service, so it must not be what limits a client: with K requests answered
  // together, one server thread serves them one after another and every request
  // waits behind the others. Half the cores (at most 8) leaves the other half to
  // the clients; on 2 cores it is one thread.
  const unsigned server_threads = std::clamp(std::thread::hardware_concurrency() / 2, 1u, 8u);
  ServerProcess server(options.target.empty() ? std::nullopt : parse_target_url(options.target), server_threads);
  register_fan_out(runtimes, options, server);
  register_producer_consumer(runtimes, options);

  const std::size_t ran = benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  if (ran == 0) {
    std::cerr << "concbench: no benchmark matches the filter\n";
    return 1;
  }
  if (reporter.errors > 0) {
    std::cerr << "concbench: " << reporter.errors << " benchmark run(s) failed; see the error messages above\n";
    return 1;
  }
  return 0;
}
