#include "models/thread_pool.hpp"

#include <new>
#include <stdexcept>

namespace concbench {

namespace {
unsigned checked(unsigned threads) {
  if (threads == 0) throw std::invalid_argument("ThreadPool needs at least one thread");
  return threads;
}
}  // namespace

ThreadPool::ThreadPool(unsigned threads)
    : threads_(checked(threads)),
      // `threads` TBB workers (the limit counts the calling thread too) and no slot
      // kept for callers: posted jobs need workers even when no caller is inside,
      // and a caller of run() takes a free slot, so `threads` run at once either way.
      parallelism_(tbb::global_control::max_allowed_parallelism, threads + 1),
      arena_(static_cast<int>(threads), 0) {
  arena_.initialize();
}

ThreadPool::~ThreadPool() {
  arena_.execute([this] { posted_.wait(); });
  arena_.terminate();
  // Joins TBB's worker threads now rather than leaving them to static destructors.
  tbb::finalize(scheduler_, std::nothrow);
}

}  // namespace concbench
