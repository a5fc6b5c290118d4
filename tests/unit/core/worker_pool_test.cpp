#include "anisoflow/core/worker_pool.hpp"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace anisoflow {
namespace {

TEST(WorkerPool, RunsEverySliceOnceAndWaitsForAll) {
    WorkerPool pool(3);
    ASSERT_EQ(pool.size(), 3U);
    for (int round = 0; round < 200; ++round) {
        std::vector<int> hits(3, 0);
        std::atomic<int> total{0};
        pool.run([&](unsigned k) {
            hits[k] += 1;  // each slice owns its element
            total.fetch_add(static_cast<int>(k) + 1);
        });
        ASSERT_EQ(hits, (std::vector<int>{1, 1, 1})) << "round " << round;
        ASSERT_EQ(total.load(), 6);
    }
}

TEST(WorkerPool, SliceZeroRunsOnTheCallingThread) {
    WorkerPool pool(2);
    std::thread::id slice_zero;
    std::thread::id slice_one;
    pool.run([&](unsigned k) { (k == 0 ? slice_zero : slice_one) = std::this_thread::get_id(); });
    EXPECT_EQ(slice_zero, std::this_thread::get_id());
    EXPECT_NE(slice_one, std::this_thread::get_id());
    WorkerPool single(0);  // clamped to one thread: the caller
    unsigned calls = 0;
    single.run([&](unsigned /*k*/) { ++calls; });
    EXPECT_EQ(single.size(), 1U);
    EXPECT_EQ(calls, 1U);
}

}  // namespace
}  // namespace anisoflow
