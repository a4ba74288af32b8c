#pragma once
// The model names every workload and the harness share, and the one object that
// owns every model runtime of the process.
#include "models/event_loop.hpp"
#include "models/fiber_pool.hpp"
#include "models/process_pool.hpp"
#include "models/thread_pool.hpp"

#include <array>
#include <string_view>

namespace concbench {

enum class Model { serial, event_loop, fibers, fibers_mt, thread_pool, process_pool };

inline constexpr std::array kModels{Model::serial,    Model::event_loop,  Model::fibers,
                                    Model::fibers_mt, Model::thread_pool, Model::process_pool};

constexpr std::string_view model_name(Model model) {
  constexpr std::array<std::string_view, kModels.size()> names{
      "serial", "event_loop", "fibers", "fibers_mt", "thread_pool", "process_pool"};
  return names[static_cast<std::size_t>(model)];
}

// Models whose thread or process count follows --workers; the others use one thread.
constexpr bool follows_workers(Model model) {
  return model == Model::fibers_mt || model == Model::thread_pool || model == Model::process_pool;
}

// Created once in main() (Boost.Fiber's work_stealing cannot be rebuilt within a
// process) and destroyed before exit, in reverse order.
struct Runtimes {
  explicit Runtimes(unsigned workers)
      : workers(workers),
        process_pool(workers),
        // The loop runs on the process pool's I/O thread: a coroutine that offloads
        // to a process writes to the worker's socket and is woken by its reply
        // itself, with no thread hop between the loop and the pool.
        event_loop(process_pool.io_context(), process_pool.io_thread_id()),
        fibers(FiberScheduler::round_robin, 1),
        // Boost.Fiber's work_stealing spins when it has no other thread to steal
        // from; with one worker, fibers_mt is round_robin, which is what it means.
        fibers_mt(workers > 1 ? FiberScheduler::work_stealing : FiberScheduler::round_robin, workers),
        thread_pool(workers) {}

  // The process pool is built first but must stop first: its completions may
  // still post to the event loop or wake fibers.
  ~Runtimes() { process_pool.shutdown(); }

  unsigned threads(Model model) const { return follows_workers(model) ? workers : 1; }

  unsigned workers;
  ProcessPool process_pool;  // first: it forks while the process has one thread
  EventLoop event_loop;
  FiberPool fibers;
  FiberPool fibers_mt;
  ThreadPool thread_pool;
};

}  // namespace concbench
