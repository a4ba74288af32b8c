#include "workloads/producer_consumer/producer_consumer.hpp"

#include "models/test_main.hpp"
#include "workloads/mix.hpp"

#include <gtest/gtest.h>

#include <dirent.h>

#include <stdexcept>

namespace concbench::producer_consumer {

inline void PrintTo(Impl impl, std::ostream* out) { *out << impl_name(impl); }

namespace {

Outcome run_on(Impl impl, const Params& p) { return run(impl, test_runtimes(), p); }

// The shapes a model runs: the pipeline has one input stage and no C of its own,
// spsc only 1x1.
std::vector<Params> shapes(Impl impl, Params p) {
  if (impl == Impl::thread_pool) {
    p.producers = 1;
    p.consumers = 0;
    return {p};
  }
  std::vector<Params> out;
  for (auto [producers, consumers] : {std::pair{1u, 1u}, {1u, 4u}, {4u, 1u}, {4u, 4u}}) {
    if (impl == Impl::spsc_lockfree && (producers != 1 || consumers != 1)) continue;
    p.producers = producers;
    p.consumers = consumers;
    out.push_back(p);
  }
  return out;
}

std::size_t thread_count() {
  std::size_t count = 0;
  if (DIR* dir = opendir("/proc/self/task")) {
    while (dirent* entry = readdir(dir))
      if (entry->d_name[0] != '.') ++count;
    closedir(dir);
  }
  return count;
}

class ProducerConsumerTest : public testing::TestWithParam<Impl> {};

TEST(ProducerConsumer, ReferenceCountsEveryIdOnce) {
  Params p{.messages = 5};
  const Tally want = reference(p);
  EXPECT_EQ(want.count, 5u);
  EXPECT_EQ(want.bad_payloads, 0u);
  EXPECT_EQ(want.id_sum, mix(0) + mix(1) + mix(2) + mix(3) + mix(4));
  EXPECT_EQ(reference(Params{.messages = 0}), Tally{});
}

TEST(ProducerConsumer, TallyCatchesLostDoubledAndCorruptMessages) {
  Params p{.messages = 4};
  auto tally_of = [&](std::vector<Message> messages) {
    Consumer consumer(p);
    for (const Message& m : messages) consumer.receive(m);
    Outcome o;
    o.tally = consumer.tally();
    o.sent = messages.size();
    return o;
  };
  auto message = [](std::uint64_t id) { return Message{id, payload_of(id)}; };
  const Tally want = reference(p);
  EXPECT_TRUE(matches(tally_of({message(3), message(1), message(0), message(2)}), want));  // any order
  EXPECT_FALSE(matches(tally_of({message(0), message(1), message(2)}), want));             // one lost
  EXPECT_FALSE(matches(tally_of({message(0), message(1), message(2), message(2)}), want));  // one doubled
  EXPECT_FALSE(matches(tally_of({message(0), message(1), message(2), {3, 42}}), want));     // corrupt payload
  Outcome lost_send = tally_of({message(0), message(1), message(2), message(3)});
  lost_send.sent = 3;
  EXPECT_FALSE(matches(lost_send, want));
}

TEST(ProducerConsumer, ProducersSplitTheIdsAndPaceOnOneSchedule) {
  Params p{.producers = 3, .messages = 7};
  std::vector<std::uint64_t> ids;
  for (unsigned i = 0; i < 3; ++i)
    for (Producer producer(p, i, std::nullopt); !producer.done();) ids.push_back(producer.next().id);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::uint64_t>{0, 1, 2, 3, 4, 5, 6}));

  const auto start = Clock::now() + std::chrono::hours(1);
  Producer second(p, 1, OpenLoopSchedule(start, 1000.0));  // ids 1, 4: due at 1 ms, 4 ms
  EXPECT_EQ(second.not_yet_due(), start + std::chrono::milliseconds(1));
  EXPECT_EQ(second.next().due, (start + std::chrono::milliseconds(1)).time_since_epoch().count());
  EXPECT_EQ(second.not_yet_due(), start + std::chrono::milliseconds(4));
  Producer behind(p, 0, OpenLoopSchedule(Clock::now() - std::chrono::hours(1), 1000.0));
  EXPECT_FALSE(behind.not_yet_due()) << "behind its schedule: send now";
  EXPECT_FALSE(Producer(p, 0, std::nullopt).not_yet_due());
}

TEST(ProducerConsumer, PacedProducersSleepOnlyWhenFarAhead) {
  const auto now = Clock::now();
  EXPECT_FALSE(sleep_target(now + kYieldWindow, now));
  EXPECT_FALSE(sleep_target(now - std::chrono::milliseconds(1), now));
  EXPECT_EQ(sleep_target(now + std::chrono::seconds(1), now), now + std::chrono::seconds(1) - kYieldWindow);
}

TEST(ProducerConsumer, SpinWorkIsCalibrated) {
  EXPECT_EQ(spin_iterations(0), 0u);
  EXPECT_GT(spin_ns_per_iteration(), 0.0);
  EXPECT_GE(spin_iterations(1), 1u);
  // The work is really done: 200 messages of 50 us take about 10 ms. At least half
  // of it: a calibration on a busy machine counts slow iterations, so it spins fewer.
  Consumer consumer(Params{.messages = 200, .work_ns = 50'000});
  const auto start = Clock::now();
  for (std::uint64_t id = 0; id < 200; ++id) consumer.receive(Message{id, payload_of(id)});
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(5));
}

TEST(ProducerConsumer, BadParametersAreRejected) {
  EXPECT_THROW(run_on(Impl::threads_queue, Params{.capacity = 0, .messages = 10}), std::invalid_argument);
  EXPECT_THROW(run_on(Impl::event_loop, Params{.producers = 0, .messages = 10}), std::invalid_argument);
  EXPECT_THROW(run_on(Impl::spsc_lockfree, Params{.producers = 2, .consumers = 1, .messages = 10}),
               std::invalid_argument);
  // Only the pipeline has no consumers of its own.
  EXPECT_THROW(run_on(Impl::fibers, Params{.consumers = 0, .messages = 10}), std::invalid_argument);
  EXPECT_TRUE(matches(run_on(Impl::thread_pool, Params{.consumers = 0, .messages = 10}), reference(Params{.messages = 10})));
}

TEST_P(ProducerConsumerTest, EveryMessageExactlyOnce) {
  for (std::uint64_t capacity : {1, 64})
    for (std::uint64_t messages : {0, 3, 10'000})  // 3: more producers and consumers than messages
      for (const Params& p : shapes(GetParam(), Params{.capacity = capacity, .messages = messages})) {
        const Outcome got = run_on(GetParam(), p);
        EXPECT_TRUE(matches(got, reference(p))) << to_string(p) << ": " << to_string(got);
        EXPECT_LE(got.blocked_sends, got.sent);
      }
}

TEST_P(ProducerConsumerTest, RoomForEveryMessageMeansNoProducerWaits) {
  for (const Params& p : shapes(GetParam(), Params{.capacity = 64, .messages = 50})) {
    const Outcome got = run_on(GetParam(), p);
    EXPECT_TRUE(matches(got, reference(p))) << to_string(p) << ": " << to_string(got);
    EXPECT_EQ(got.blocked_sends, 0u) << to_string(p);
    // buffered_channel keeps one slot free and wants a power of two.
    EXPECT_EQ(got.capacity, GetParam() == Impl::fibers || GetParam() == Impl::fibers_mt ? 63u : 64u);
  }
}

TEST_P(ProducerConsumerTest, ConsumerWorkAndPacingKeepEveryMessage) {
  for (Params p : shapes(GetParam(), Params{.capacity = 64, .messages = 2'000, .work_ns = 1000})) {
    p.rate_per_s = 100'000;  // 20 ms
    p.latency_sampling = 8;
    const auto start = Clock::now();
    Outcome got = run_on(GetParam(), p);
    EXPECT_TRUE(matches(got, reference(p))) << to_string(p) << ": " << to_string(got);
    // Paced: the run lasts at least the schedule, and every sampled message has a latency.
    EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(19));
    std::uint64_t count = 0;
    for (std::uint64_t id = 0; id < p.messages; ++id) count += sampled(id, 8);
    ASSERT_EQ(got.latency.count(), count);
    EXPECT_GT(count, p.messages / 8 / 2);
    EXPECT_GE(got.latency.percentile_us(0.001), 0.0);
  }
}

TEST_P(ProducerConsumerTest, FullBufferBlocksProducers) {
  // One slow consumer and a buffer of one: producers must wait for room.
  for (Params p : shapes(GetParam(), Params{.capacity = 1, .messages = 200, .work_ns = 20'000})) {
    if (p.consumers != 1 && p.consumers != 0) continue;
    const Outcome got = run_on(GetParam(), p);
    EXPECT_TRUE(matches(got, reference(p))) << to_string(p) << ": " << to_string(got);
    if (GetParam() == Impl::thread_pool) continue;  // no producer waits in a pipeline
    EXPECT_GT(got.blocked_sends, 0u) << to_string(p);
    EXPECT_GT(got.blocked, Clock::duration::zero()) << to_string(p);
  }
}

TEST_P(ProducerConsumerTest, FailingConsumerClosesTheBufferAndStopsTheGroup) {
  // A first run starts whatever threads the model's runtime starts lazily.
  for (const Params& p : shapes(GetParam(), Params{.capacity = 4, .messages = 1'000})) run_on(GetParam(), p);
  const std::size_t threads_before = thread_count();
  // The consumer that gets id 3 throws; by then (300 us of work in) every producer
  // waits on the full buffer, and closing it must wake them.
  for (Params p : shapes(GetParam(), Params{.capacity = 1, .messages = 100'000, .work_ns = 100'000})) {
    p.fail_at = 3;
    const Outcome got = run_on(GetParam(), p);
    ASSERT_TRUE(got.error) << to_string(p);
    EXPECT_NE(to_string(got).find("consumer failed on message 3"), std::string::npos) << to_string(got);
    EXPECT_FALSE(matches(got, reference(p)));
    EXPECT_LT(got.sent, p.messages);
    EXPECT_LT(got.tally.count, 1000u) << "the other consumers stop too (all of M would take seconds)";
    EXPECT_EQ(got.producers_closed, p.producers) << to_string(p) << ": every producer finds the buffer closed";
    EXPECT_THROW(std::rethrow_exception(got.error), std::runtime_error);
  }
  // Nothing left behind: no thread outlives the run, and the model still works.
  EXPECT_EQ(thread_count(), threads_before);
  for (const Params& p : shapes(GetParam(), Params{.capacity = 4, .messages = 1'000}))
    EXPECT_TRUE(matches(run_on(GetParam(), p), reference(p))) << to_string(p);
}

TEST_P(ProducerConsumerTest, FailureOnTheLastMessageEndsTheRun) {
  // Producers may be done, or blocked sending the end of the stream.
  for (Params p : shapes(GetParam(), Params{.capacity = 1, .messages = 100})) {
    p.fail_at = p.messages - 1;
    const Outcome got = run_on(GetParam(), p);
    ASSERT_TRUE(got.error) << to_string(p);
    EXPECT_LE(got.tally.count, p.messages - 1);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ProducerConsumerTest, testing::ValuesIn(kImpls),
                         [](const auto& info) { return std::string(impl_name(info.param)); });

}  // namespace
}  // namespace concbench::producer_consumer
