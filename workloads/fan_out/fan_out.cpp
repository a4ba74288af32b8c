#include "workloads/fan_out/fan_out.hpp"

#include "workloads/mix.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

namespace concbench::fan_out {

namespace {

constexpr std::uint64_t kFailSalt = 0x66a11ULL, kEndSalt = 0xe4dULL;

template <class T>
bool parse_number(std::string_view text, T& out) {
  if (text.empty()) return false;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc{} && end == text.data() + text.size();
}

}  // namespace

std::string work_target(const WorkQuery& q) {
  char fail[32];
  const auto end = std::to_chars(fail, fail + sizeof fail, q.fail).ptr;
  return "/work?delay_us=" + std::to_string(q.delay_us) + "&bytes=" + std::to_string(q.bytes) +
         "&fail=" + std::string(fail, end) + "&id=" + std::to_string(q.id);
}

std::optional<WorkQuery> parse_work_target(std::string_view target) {
  const auto question = target.find('?');
  if (target.substr(0, question) != "/work") return std::nullopt;
  WorkQuery q;
  if (question == std::string_view::npos) return q;
  bool seen[4] = {};
  std::string_view rest = target.substr(question + 1);
  for (bool more = !rest.empty(); more;) {  // "a=1&" has an empty last pair: malformed
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    more = amp != std::string_view::npos;
    if (more) rest = rest.substr(amp + 1);
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const std::string_view key = pair.substr(0, eq), value = pair.substr(eq + 1);
    int which = key == "delay_us" ? 0 : key == "bytes" ? 1 : key == "fail" ? 2 : key == "id" ? 3 : -1;
    if (which < 0 || seen[which]) return std::nullopt;
    seen[which] = true;
    const bool parsed = which == 0   ? parse_number(value, q.delay_us)
                        : which == 1 ? parse_number(value, q.bytes)
                        : which == 2 ? parse_number(value, q.fail)
                                     : parse_number(value, q.id);
    if (!parsed) return std::nullopt;
  }
  if (q.delay_us > kMaxDelayUs || q.bytes > kMaxBodyBytes || !(q.fail >= 0 && q.fail <= 1)) return std::nullopt;
  return q;
}

bool draws_failure(std::uint64_t id, double fail) {
  if (!(fail > 0)) return false;
  const double u = static_cast<double>(mix(id ^ kFailSalt) >> 11) * 0x1p-53;  // uniform in [0, 1)
  return u < fail;
}

void fill_body(std::uint64_t id, std::span<char> out, std::uint64_t first_byte) {
  const std::uint64_t seed = mix(id) + first_byte / 8 * kGolden;
  const std::size_t words = out.size() / 8;
  for (std::size_t j = 0; j < words; ++j) {
    const std::uint64_t w = seed + j * kGolden;
    std::memcpy(out.data() + j * 8, &w, 8);
  }
  if (const std::size_t tail = out.size() % 8) {
    const std::uint64_t last = seed + words * kGolden;
    std::memcpy(out.data() + words * 8, &last, tail);
  }
}

std::uint64_t body_checksum(std::span<const char> body) {
  // A sum of mixed words, each xored with its position: no serial dependency (fast
  // on 64 KiB bodies), yet a moved word changes it.
  std::uint64_t sum = mix(body.size());
  const std::size_t words = body.size() / 8;
  for (std::size_t j = 0; j < words; ++j) {
    std::uint64_t w;
    std::memcpy(&w, body.data() + j * 8, 8);
    sum += mix(w ^ (j * kGolden));
  }
  if (const std::size_t tail = body.size() % 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, body.data() + words * 8, tail);
    sum += mix(w ^ (words * kGolden));
  }
  return sum;
}

std::string_view group_name(Group group) { return group == Group::all ? "all" : "settled"; }

std::string to_string(const Outcome& o) {
  return "{ok " + std::to_string(o.ok) + ", failed " + std::to_string(o.failed) + ", timed out " +
         std::to_string(o.timed_out) + ", cancelled " + std::to_string(o.cancelled) + ", ended sum " +
         std::to_string(o.ended_sum) + ", ok sum " + std::to_string(o.ok_sum) + "}";
}

void Tally::end(std::uint64_t id, Ending ending, std::uint64_t body_checksum) {
  counts_[static_cast<int>(ending)].fetch_add(1, std::memory_order_relaxed);
  ended_sum_.fetch_add(mix(id ^ kEndSalt), std::memory_order_relaxed);
  if (ending == Ending::ok) ok_sum_.fetch_add(body_checksum, std::memory_order_relaxed);
}

Outcome Tally::outcome() const {
  auto get = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_acquire); };
  return {get(counts_[0]), get(counts_[1]), get(counts_[2]), get(counts_[3]), get(ended_sum_), get(ok_sum_)};
}

Expected reference(const Params& p) {
  // Nothing could ever be in flight: every model would wait forever.
  if (p.k == 0) throw std::invalid_argument("fan_out needs at least one request in flight (K >= 1)");
  Expected e{p, {}, {}};
  e.body_checksums.resize(p.n);
  std::string body(p.body_bytes, '\0');
  Tally tally;
  for (std::uint64_t id = 0; id < p.n; ++id) {
    fill_body(id, body);
    e.body_checksums[id] = body_checksum(body);
    const bool fails = draws_failure(id, p.fail);
    tally.end(id, fails ? Ending::failed : Ending::ok, e.body_checksums[id]);
  }
  e.settled = tally.outcome();
  return e;
}

std::string to_string(const Expected& e) {
  return e.p.group == Group::settled ? to_string(e.settled)
                                     : "every id ending once, " + std::to_string(e.settled.failed) +
                                           " of them failing if all ran, none timing out";
}

bool matches(const Outcome& got, const Expected& want) {
  const Outcome& all_run = want.settled;
  if (want.p.group == Group::settled || all_run.failed == 0) return got == all_run;
  return got.total() == want.p.n && got.ended_sum == all_run.ended_sum && got.failed >= 1 &&
         got.failed <= all_run.failed && got.ok <= all_run.ok && got.timed_out == 0;
}

Ending record_response(Tally& tally, const Expected& e, std::uint64_t id, unsigned status, std::string_view body) {
  // The message is built only for an error: a correct response allocates nothing.
  auto error = [id](const std::string& what) { return std::runtime_error("request " + std::to_string(id) + ": " + what); };
  if (id >= e.body_checksums.size()) throw error("no such request");
  if (draws_failure(id, e.p.fail)) {
    if (status != 500) throw error("HTTP " + std::to_string(status) + ", expected 500");
    tally.end(id, Ending::failed);
    return Ending::failed;
  }
  if (status != 200) throw error("HTTP " + std::to_string(status) + ", expected 200");
  if (body.size() != e.p.body_bytes)
    throw error(std::to_string(body.size()) + " body bytes, expected " + std::to_string(e.p.body_bytes));
  const std::uint64_t checksum = body_checksum(body);
  if (checksum != e.body_checksums[id]) throw error("the body differs");
  tally.end(id, Ending::ok, checksum);
  return Ending::ok;
}

std::string_view pool_size_name(PoolSize size) { return size == PoolSize::workers ? "workers" : "per_request"; }

std::uint64_t in_flight_limit(Model model, PoolSize size, unsigned workers, const Params& p) {
  std::uint64_t limit = p.k;
  if (model == Model::serial) limit = 1;
  if (model == Model::thread_pool && size == PoolSize::workers) limit = std::min<std::uint64_t>(p.k, workers);
  return std::max<std::uint64_t>(1, std::min(limit, p.n));
}

std::chrono::microseconds ideal_time(const Params& p, std::uint64_t in_flight) {
  const std::uint64_t rounds = (p.n + in_flight - 1) / in_flight;
  return std::chrono::microseconds(rounds * p.delay_us);
}

bool is_stated(const Params& p) {
  auto same = [&p](const Params& q) {
    return p.n == q.n && p.k == q.k && p.delay_us == q.delay_us && p.body_bytes == q.body_bytes && p.fail == q.fail &&
           p.group == q.group;
  };
  return same(kIdealCell) || same(kRateCell);
}

std::string stated_json() {
  auto cell = [](const Params& p) {
    return "{\"group\": \"" + std::string(group_name(p.group)) + "\", \"n\": " + std::to_string(p.n) +
           ", \"k\": " + std::to_string(p.k) + ", \"delay_us\": " + std::to_string(p.delay_us) +
           ", \"bytes\": " + std::to_string(p.body_bytes) + ", \"fail\": 0}";
  };
  std::string checks;
  for (const Check& c : kChecks) {
    std::ostringstream limit;
    limit << c.limit;
    checks.append(checks.empty() ? "" : ", ").append("\"").append(c.name).append("\": {\"series\": \"");
    checks.append(c.series).append("\", \"figure\": \"").append(c.figure).append("\", \"limit\": ");
    checks.append(limit.str()).append(", \"at_most\": ").append(c.at_most ? "true" : "false").append("}");
  }
  return "{\"ideal\": " + cell(kIdealCell) + ", \"rate\": " + cell(kRateCell) + ", \"checks\": {" + checks + "}}";
}

bool supports(Model model) { return model != Model::process_pool; }

bool peer_runs(Suite suite, const Params& p) {
  return suite == Suite::full || p.fail > 0 || (suite == Suite::standard && p == kIdealCell);
}

std::vector<Params> parameter_sets(Suite suite) {
  constexpr double kFail = 0.01;
  std::vector<Params> sets;
  // The whole grid; group:all only where requests fail (without failures it ends
  // exactly like group:settled).
  auto grid = [&] {
    for (std::uint64_t n : {1000, 10000})
      for (unsigned k : {1, 10, 100, 1000})
        for (std::uint64_t delay_us : {0, 1000, 10000})
          for (std::uint64_t bytes : {64, 65536})
            for (double fail : {0.0, kFail})
              for (Group group : {Group::settled, Group::all})
                if (group == Group::settled || fail > 0) sets.push_back({n, k, delay_us, bytes, fail, group});
  };
  if (suite == Suite::full) {
    grid();
    return sets;
  }
  // The cells the report's questions need. The headline: N=10000, K=100, delay
  // 10 ms, ideal 1 s.
  sets.push_back(kIdealCell);
  // Wall time against K (delay 1 ms), the most a model holds (K=1000 at 10 ms).
  for (unsigned k : suite == Suite::quick ? std::vector<unsigned>{10, 1000} : std::vector<unsigned>{1, 10, 100, 1000})
    sets.push_back({1000, k, 1000, 64, 0, Group::settled});
  if (suite == Suite::standard) sets.push_back({10000, 1000, 10000, 64, 0, Group::settled});
  // Requests per second against wrk at delay 0 (per-request overhead), and with
  // 64 KiB bodies (copying).
  for (unsigned k : suite == Suite::quick ? std::vector<unsigned>{100} : std::vector<unsigned>{1, 10, 100})
    sets.push_back({suite == Suite::quick ? 2000u : 10000u, k, 0, 64, 0, Group::settled});
  sets.push_back({1000, 10, 0, 65536, 0, Group::settled});
  // Fail-fast against settled, 1% of requests failing.
  for (Group group : {Group::all, Group::settled}) sets.push_back({1000, 100, 1000, 64, kFail, group});
  return sets;
}

void reserve_descriptors() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t size = std::min<rlim_t>(kReservedDescriptors, limit.rlim_cur);
  const int any = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (any < 0) return;
  // F_DUPFD takes the lowest free descriptor from `size - 1` up: unlike dup2, it
  // never closes one in use.
  const int last = ::fcntl(any, F_DUPFD_CLOEXEC, static_cast<int>(size) - 1);
  if (last >= 0) ::close(last);
  ::close(any);
}

Outcome run(Model model, PoolSize size, Runtimes& runtimes, const Target& target, const Expected& e,
            Measurements& m) {
  switch (model) {
    case Model::serial: return run_serial(target, e, m);
    case Model::event_loop: return run_event_loop(runtimes.event_loop, target, e, m);
    case Model::fibers: return run_fibers(runtimes.fibers, target, e, m);
    case Model::fibers_mt: return run_fibers(runtimes.fibers_mt, target, e, m);
    case Model::thread_pool:
      return size == PoolSize::workers ? run_thread_pool(runtimes.thread_pool, target, e, m)
                                      : run_thread_per_request(target, e, m);
    case Model::process_pool: break;
  }
  throw std::invalid_argument("fan_out does not run on " + std::string(model_name(model)));
}

}  // namespace concbench::fan_out
