// concbench: registers every workload x model x parameter set with Google
// Benchmark, verifies every result, and records the machine's context.
#include "bench/context.hpp"
#include "bench/harness.hpp"

#include <unistd.h>

#include <charconv>
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
    auto value_of = [&](std::string_view flag) -> std::optional<std::string_view> {
      if (arg.substr(0, flag.size()) != flag) return std::nullopt;
      if (arg.size() == flag.size() || arg[flag.size()] != '=') usage_error(std::string(flag) + " needs =VALUE");
      return arg.substr(flag.size() + 1);
    };
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
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  return options;
}

bool listing_only(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--benchmark_list_tests" || arg == "--benchmark_list_tests=true" || arg == "--benchmark_list_tests=1")
      return true;
  }
  return false;
}

// Forwards to the display reporter Google Benchmark would have used and counts the
// runs that ended in an error, so that concbench can exit non-zero.
class ErrorCountingReporter : public benchmark::BenchmarkReporter {
 public:
  ErrorCountingReporter()
      : inner_(std::make_unique<benchmark::ConsoleReporter>(
            ::isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_Color : benchmark::ConsoleReporter::OO_None)) {}

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
  Options options = parse_own_flags(argc, argv);
  const bool listing = listing_only(argc, argv);  // before Initialize consumes the flag
  benchmark::Initialize(&argc, argv, print_own_help);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;

  Runtimes runtimes(options.workers);  // forks the process pool before any thread starts
  std::optional<Calibration> calibration;
  if (!listing) calibration = calibrate(runtimes);
  add_context(options, calibration ? &*calibration : nullptr);

  register_cpu_hash(runtimes, options);

  ErrorCountingReporter reporter;
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
