#include "bench/harness.hpp"
#include "workloads/cpu_hash/cpu_hash.hpp"

#include <map>

namespace concbench {

void register_cpu_hash(Runtimes& runtimes, const Options& options) {
  using namespace cpu_hash;
  for (Model model : kModels) {
    if (!wants(options, model)) continue;
    for (const Params& p : parameter_sets(options.suite, model)) {
      const unsigned threads = runtimes.threads(model);
      std::string name = benchmark_name("cpu_hash", model,
                                        {{"block_bytes", std::to_string(p.block_bytes)},
                                         {"grain", std::to_string(p.grain)},
                                         {"ship", std::string(ship_name(p.ship))}},
                                        threads);
      auto expected = [p] {
        // Models share parameter sets; compute each reference once.
        static std::map<std::pair<std::size_t, std::uint64_t>, Checksum> cache;
        const std::pair key{p.block_bytes, p.items};
        if (auto it = cache.find(key); it != cache.end()) return it->second;
        return cache.emplace(key, reference(p)).first->second;
      };
      auto counters = [p, threads](benchmark::State& state) {
        const auto items = static_cast<std::int64_t>(state.iterations() * p.items);
        state.SetItemsProcessed(items);
        state.SetBytesProcessed(items * static_cast<std::int64_t>(p.block_bytes));
        state.counters["workers"] = threads;
        state.counters["items"] = static_cast<double>(p.items);
      };
      register_verified(name, [&runtimes, model, p] { return run(model, runtimes, p); }, expected, counters,
                        model == Model::process_pool ? &runtimes.process_pool : nullptr);
    }
  }
}

}  // namespace concbench
