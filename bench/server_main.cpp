// concbench-server: the fan_out workload's HTTP server as a process of its own, so
// that a benchmark's client and the server it measures do not share a runtime.
// The benchmark starts it and reads the port from its one line of output.
#include "bench/flags.hpp"
#include "workloads/fan_out/fan_out_server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>

#include <charconv>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace {

namespace asio = boost::asio;
using concbench::fan_out::Server;
using concbench::fan_out::ServerOptions;

void print_help() {
  std::cout << "concbench-server: the fan_out workload's HTTP server (GET /work?delay_us=D&bytes=B&fail=P&id=I).\n\n"
               "  --bind=ADDR            address to listen on (default: 127.0.0.1)\n"
               "  --port=N               port to listen on, 0 for an ephemeral one (default: 0)\n"
               "  --threads=N            threads serving requests, 1 to 1024 (default: 1)\n"
               "  --idle-timeout-ms=N    close a connection idle or half-sent this long (default: 5000)\n"
               "  --max-connections=N    connections served at once, 1 to 1000000; more are closed (default: 4096)\n"
               "  --help                 this text\n\n"
               "Once listening it prints 'concbench-server listening on ADDR:PORT'; SIGINT or SIGTERM stop it.\n";
}

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "concbench-server: " << message << " (see --help)\n";
  std::exit(2);
}

std::optional<unsigned long> parse_number(std::string_view text, unsigned long low, unsigned long high) {
  unsigned long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value < low || value > high)
    return std::nullopt;
  return value;
}

ServerOptions parse_flags(int argc, char** argv) {
  ServerOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value_of = [&](std::string_view flag) { return concbench::flag_value(arg, flag, usage_error); };
    if (arg == "--help" || arg == "-h") {
      print_help();
      std::exit(0);
    } else if (auto v = value_of("--bind")) {
      boost::system::error_code ec;
      asio::ip::make_address(std::string(*v), ec);
      if (ec) usage_error("--bind must be an IP address such as 127.0.0.1, not '" + std::string(*v) + "'");
      options.bind = *v;
    } else if (auto v = value_of("--port")) {
      auto n = parse_number(*v, 0, 65535);
      if (!n) usage_error("--port must be a whole number from 0 to 65535, not '" + std::string(*v) + "'");
      options.port = static_cast<std::uint16_t>(*n);
    } else if (auto v = value_of("--threads")) {
      auto n = parse_number(*v, 1, 1024);
      if (!n) usage_error("--threads must be a whole number from 1 to 1024, not '" + std::string(*v) + "'");
      options.threads = static_cast<unsigned>(*n);
    } else if (auto v = value_of("--max-connections")) {
      const auto n = parse_number(*v, 1, 1000000);
      if (!n) usage_error("--max-connections must be a whole number from 1 to 1000000, not '" + std::string(*v) + "'");
      options.max_connections = static_cast<std::size_t>(*n);
    } else if (auto v = value_of("--idle-timeout-ms")) {
      auto n = parse_number(*v, 1, 3'600'000);
      if (!n) usage_error("--idle-timeout-ms must be a whole number from 1 to 3600000, not '" + std::string(*v) + "'");
      options.idle_timeout = std::chrono::milliseconds(*n);
    } else {
      usage_error("unknown argument '" + std::string(arg) + "'");
    }
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  const ServerOptions options = parse_flags(argc, argv);
  std::optional<Server> server;
  try {
    server.emplace(options);
  } catch (const std::exception& e) {
    std::cerr << "concbench-server: " << e.what() << "\n";
    return 1;
  }

  // Signals wait on a loop of their own, so the server's threads serve requests only.
  // Installed before the line below: whoever reads it may signal at once.
  asio::io_context signal_context(1);
  asio::signal_set signals(signal_context, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) server->stop();
  });
  std::jthread signal_thread([&] { signal_context.run(); });

  const bool v6 = asio::ip::make_address(options.bind).is_v6();
  std::cout << "concbench-server listening on " << (v6 ? "[" + options.bind + "]" : options.bind) << ":"
            << server->port() << std::endl;
  server->run();
  signal_context.stop();
  return 0;
}
