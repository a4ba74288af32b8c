// serial: one request at a time on one keep-alive connection: the floor every
// concurrent model is measured against (its wall time is N round trips).
#include "workloads/fan_out/fan_out.hpp"

#include "workloads/fan_out/fan_out_http.hpp"

namespace concbench::fan_out {

Outcome run_serial(const Target& target, const Expected& e, Measurements& m) {
  BlockingRun run(target, e, m);
  BlockingConnection& connection = run.connection();
  for (std::uint64_t id = 0; id < e.p.n; ++id) run.fetch(connection, id);
  return run.finish();
}

}  // namespace concbench::fan_out
