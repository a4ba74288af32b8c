#include "models/test_main.hpp"

#include <gtest/gtest.h>

namespace {
concbench::Runtimes* runtimes = nullptr;
}

concbench::Runtimes& concbench::test_runtimes() { return *runtimes; }

int main(int argc, char** argv) {
  concbench::Runtimes owned(concbench::kTestWorkers);
  runtimes = &owned;
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
