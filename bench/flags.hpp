#pragma once
// "--name=VALUE" parsing shared by concbench and concbench-server.
#include <optional>
#include <string>
#include <string_view>

namespace concbench {

// The value of `arg` if it is `flag`=VALUE; nullopt if it is another argument. A bare
// `flag` without =VALUE goes to `usage_error` (which exits).
inline std::optional<std::string_view> flag_value(std::string_view arg, std::string_view flag,
                                                  void (*usage_error)(const std::string&)) {
  if (arg.substr(0, flag.size()) != flag) return std::nullopt;
  if (arg.size() == flag.size() || arg[flag.size()] != '=') usage_error(std::string(flag) + " needs =VALUE");
  return arg.substr(flag.size() + 1);
}

}  // namespace concbench
