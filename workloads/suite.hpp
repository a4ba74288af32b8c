#pragma once
// The three sizes of a concbench run. Each workload decides which of its
// parameter sets belong to each size, within its share of the time budget.
#include <optional>
#include <string_view>

namespace concbench {

enum class Suite { quick, standard, full };

constexpr std::string_view suite_name(Suite suite) {
  return suite == Suite::quick ? "quick" : suite == Suite::standard ? "default" : "full";
}

constexpr std::optional<Suite> parse_suite(std::string_view name) {
  for (Suite s : {Suite::quick, Suite::standard, Suite::full})
    if (suite_name(s) == name) return s;
  return std::nullopt;
}

}  // namespace concbench
