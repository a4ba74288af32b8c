#include "workloads/cpu_hash/cpu_hash.hpp"

#include "workloads/mix.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace concbench::cpu_hash {

namespace {

constexpr std::size_t kCorpusBytes = std::size_t{4} << 20;
constexpr std::uint64_t kOffsetStride = 4099;  // prime: neighbouring blocks overlap little

// Input bytes for one run are capped so that one iteration takes roughly 10 to
// 100 ms: about 32 MiB, and at most 128 Ki blocks (tiny blocks cost per block).
constexpr std::uint64_t kRunBytes = std::uint64_t{32} << 20;
constexpr std::uint64_t kMaxItems = std::uint64_t{128} << 10;
// Task sizes, at about 1.3 GB/s per core: 128 KiB is ~100 us of work, where the
// cost of a hand-off shows; 1 MiB is ~800 us, where a process pool can amortise it.
// The full grid adds ~12 us tasks. Tiny blocks cost ~0.15 us each on top of their
// bytes, so a task holds at most kMaxGrain of them to stay near 1 ms.
constexpr std::uint64_t kSmallTaskBytes = std::uint64_t{128} << 10;
constexpr std::uint64_t kLargeTaskBytes = std::uint64_t{1} << 20;
constexpr std::uint64_t kMaxGrain = 4096;

const std::vector<std::byte>& corpus_bytes() {
  static const std::vector<std::byte> bytes = [] {
    std::vector<std::byte> out(kCorpusBytes);
    std::uint64_t state = 0x636f6e6362656e63;
    for (std::size_t i = 0; i < out.size(); i += 8) {
      const std::uint64_t z = splitmix64(state);
      std::memcpy(out.data() + i, &z, 8);
    }
    return out;
  }();
  return bytes;
}

const EVP_MD* sha256() {
  // Fetched once: an implicit fetch per digest would cost more than hashing 64 B.
  static const EVP_MD* md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (!fetched) throw std::runtime_error("OpenSSL: SHA256 is not available");
    return fetched;
  }();
  return md;
}

struct ContextDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

}  // namespace

std::string_view ship_name(Ship ship) {
  return ship == Ship::bytes ? "bytes" : ship == Ship::seed ? "seed" : "none";
}

Checksum& Checksum::operator+=(const Checksum& other) {
  for (std::size_t i = 0; i < digest_sum.size(); ++i) digest_sum[i] += other.digest_sum[i];
  items += other.items;
  return *this;
}

std::string to_string(const Checksum& sum) {
  // append, not " " + ...: GCC 12 warns falsely (-Wrestrict) on that pattern.
  std::string out = "{items " + std::to_string(sum.items) + ", digest sum";
  for (auto lane : sum.digest_sum) out.append(" ").append(std::to_string(lane));
  return out.append("}");
}

std::span<const std::byte> corpus() { return corpus_bytes(); }

std::span<const std::byte> block(std::size_t block_bytes, std::uint64_t index) {
  if (block_bytes > kMaxBlockBytes) throw std::invalid_argument("cpu_hash: block_bytes above 1 MiB");
  const std::uint64_t window = kCorpusBytes - block_bytes + 1;
  return {corpus_bytes().data() + (index * kOffsetStride) % window, block_bytes};
}

Checksum hash_block(std::span<const std::byte> bytes) {
  // One context per thread, reused: allocating one per block would dominate small blocks.
  thread_local std::unique_ptr<EVP_MD_CTX, ContextDeleter> context(EVP_MD_CTX_new());
  unsigned char digest[32];
  unsigned int length = 0;
  if (!context || EVP_DigestInit_ex2(context.get(), sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(context.get(), bytes.data(), bytes.size()) != 1 ||
      EVP_DigestFinal_ex(context.get(), digest, &length) != 1 || length != sizeof digest)
    throw std::runtime_error("OpenSSL: SHA-256 failed");
  Checksum sum;
  std::memcpy(sum.digest_sum.data(), digest, sizeof digest);
  sum.items = 1;
  return sum;
}

Checksum hash_range(std::size_t block_bytes, std::uint64_t first, std::uint64_t count) {
  Checksum sum;
  for (std::uint64_t i = first; i < first + count; ++i) sum += hash_block(block(block_bytes, i));
  return sum;
}

std::uint64_t task_count(const Params& p) { return p.grain == 0 ? 0 : (p.items + p.grain - 1) / p.grain; }
std::uint64_t task_first(const Params& p, std::uint64_t task) { return task * p.grain; }
std::uint64_t task_size(const Params& p, std::uint64_t task) {
  return std::min(p.grain, p.items - task_first(p, task));
}

Checksum reference(const Params& p) { return hash_range(p.block_bytes, 0, p.items); }

std::vector<Params> parameter_sets(Suite suite, Model model) {
  std::vector<std::size_t> blocks{1024, 16384, kMaxBlockBytes};
  if (suite != Suite::quick) blocks = {64, 256, 1024, 4096, 16384, 65536, 262144, kMaxBlockBytes};
  std::vector<std::uint64_t> task_bytes{kSmallTaskBytes, kLargeTaskBytes};
  if (suite == Suite::full) task_bytes.insert(task_bytes.begin(), kSmallTaskBytes / 8);
  std::vector<Ship> ships{Ship::none};
  if (model == Model::process_pool) ships = {Ship::bytes, Ship::seed};

  std::vector<Params> sets;
  for (std::size_t block_bytes : blocks)
    for (std::uint64_t bytes : task_bytes)
      for (Ship ship : ships) {
        std::uint64_t grain = std::clamp<std::uint64_t>(bytes / block_bytes, 1, kMaxGrain);
        std::uint64_t items = std::min(kMaxItems, kRunBytes / block_bytes);
        Params p{block_bytes, grain, items, ship};
        if (std::find(sets.begin(), sets.end(), p) == sets.end()) sets.push_back(p);
      }
  return sets;
}

Checksum run(Model model, Runtimes& runtimes, const Params& p) {
  switch (model) {
    case Model::serial: return run_serial(p);
    case Model::event_loop: return run_event_loop(runtimes.event_loop, p);
    case Model::fibers: return run_fibers(runtimes.fibers, p);
    case Model::fibers_mt: return run_fibers(runtimes.fibers_mt, p);
    case Model::thread_pool: return run_thread_pool(runtimes.thread_pool, p);
    case Model::process_pool: return run_process_pool(runtimes.process_pool, p);
  }
  throw std::logic_error("cpu_hash: unknown model");
}

}  // namespace concbench::cpu_hash
