// BoundedQueue: order, backpressure (a full queue holds the producer until the consumer takes an
// item), and stop releasing a producer that waits.

#include "anisoflow/runtime/bounded_queue.hpp"

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "anisoflow/runtime/stop.hpp"

namespace anisoflow::runtime {
namespace {

using namespace std::chrono_literals;

StopSource stop_source() {
    auto stop = StopSource::create();
    EXPECT_TRUE(stop.has_value());
    return std::move(*stop);
}

TEST(BoundedQueue, KeepsOrderAndReportsItsSize) {
    const StopSource stop = stop_source();
    BoundedQueue<std::string> queue(3);
    EXPECT_FALSE(queue.try_pop());
    EXPECT_TRUE(queue.push("a", stop.token()));
    EXPECT_TRUE(queue.push("b", stop.token()));
    EXPECT_EQ(queue.size(), 2U);
    EXPECT_EQ(queue.try_pop(), "a");
    EXPECT_EQ(queue.pop(10ms), "b");
    EXPECT_FALSE(queue.pop(10ms));
    EXPECT_EQ(queue.capacity(), 3U);
}

TEST(BoundedQueue, AFullQueueHoldsTheProducerUntilAnItemIsTaken) {
    const StopSource stop = stop_source();
    BoundedQueue<int> queue(1, 5ms);
    ASSERT_TRUE(queue.push(1, stop.token()));
    std::atomic<bool> pushed = false;
    std::thread producer([&] { pushed = queue.push(2, stop.token()); });
    // The producer cannot finish while the queue is full, however long it is given.
    std::this_thread::sleep_for(50ms);
    EXPECT_FALSE(pushed.load());
    EXPECT_EQ(queue.size(), 1U);
    EXPECT_EQ(queue.pop(1s), 1);
    producer.join();
    EXPECT_TRUE(pushed.load());
    EXPECT_EQ(queue.try_pop(), 2);
}

TEST(BoundedQueue, StopReleasesAWaitingProducerWithoutQueueingItsItem) {
    const StopSource stop = stop_source();
    BoundedQueue<int> queue(1, 5ms);
    ASSERT_TRUE(queue.push(1, stop.token()));
    std::optional<bool> result;
    std::thread producer([&] { result = queue.push(2, stop.token()); });
    stop.request_stop();
    producer.join();
    ASSERT_TRUE(result.has_value());
    EXPECT_FALSE(*result);
    EXPECT_EQ(queue.size(), 1U);
    EXPECT_EQ(queue.try_pop(), 1);
}

TEST(BoundedQueue, PopWaitsForAnItemPushedLater) {
    const StopSource stop = stop_source();
    BoundedQueue<int> queue(2);
    std::thread producer([&] {
        std::this_thread::sleep_for(20ms);
        (void)queue.push(7, stop.token());
    });
    EXPECT_EQ(queue.pop(10s), 7);
    producer.join();
}

}  // namespace
}  // namespace anisoflow::runtime
