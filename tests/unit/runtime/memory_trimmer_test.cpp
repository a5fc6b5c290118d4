// MemoryTrimmer (lib/runtime/memory_trimmer.hpp): every service runs one (run_service) so that
// freed frame buffers go back to the system; its effect on resident memory is the soak's
// (bench/soak.sh, docs/performance.md), its cost bench_pipeline's.

#include "anisoflow/runtime/memory_trimmer.hpp"

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

namespace anisoflow::runtime {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(MemoryTrimmer, TrimsAtItsIntervalAndStopsAtOnce) {
    auto stopped = Clock::now();
    {
        const MemoryTrimmer trimmer(10ms);
        const auto deadline = Clock::now() + 10s;
        while (trimmer.trims() < 3 && Clock::now() < deadline) {
            std::this_thread::sleep_for(5ms);
        }
        EXPECT_GE(trimmer.trims(), 3U);
        stopped = Clock::now();
    }
    // The destructor wakes the thread rather than waiting out an interval.
    EXPECT_LT(Clock::now() - stopped, 1s);
}

TEST(MemoryTrimmer, ALongIntervalDoesNotHoldUpTheEnd) {
    const auto started = Clock::now();
    {
        const MemoryTrimmer trimmer(1h);
        EXPECT_EQ(trimmer.trims(), 0U);
    }
    EXPECT_LT(Clock::now() - started, 1s);
}

}  // namespace
}  // namespace anisoflow::runtime
