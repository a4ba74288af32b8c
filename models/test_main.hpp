#pragma once
#include "models/runtimes.hpp"

#include <ostream>

namespace concbench {

inline constexpr unsigned kTestWorkers = 2;

// The model runtimes of a test binary: created once in its main(), before gtest
// starts, like concbench's own.
Runtimes& test_runtimes();

// Readable test names and messages for parameterised tests.
inline void PrintTo(Model model, std::ostream* out) { *out << model_name(model); }

}  // namespace concbench
