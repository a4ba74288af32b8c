#pragma once
// splitmix64: the one source of deterministic pseudo-random 64-bit values that the
// workloads derive their inputs, payloads and checksums from.
#include <cstdint>

namespace concbench {

inline constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

// splitmix64's finaliser: a cheap bijective mix of 64 bits.
constexpr std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The splitmix64 generator: returns the next value of the stream `state` seeds.
constexpr std::uint64_t splitmix64(std::uint64_t& state) { return mix(state += kGolden); }

}  // namespace concbench
