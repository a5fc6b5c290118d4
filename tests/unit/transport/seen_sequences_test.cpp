// SeenSequences: duplicates told apart from new sequences in any order, gaps reported, and
// memory held by ranges, not by frames.

#include "anisoflow/transport/seen_sequences.hpp"

#include <cstdint>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

namespace anisoflow::transport {
namespace {

TEST(SeenSequences, HoldsOneRangeWhileSequencesComeInOrder) {
    SeenSequences seen;
    EXPECT_TRUE(seen.empty());
    EXPECT_FALSE(seen.highest());
    for (std::uint64_t s = 0; s < 100'000; ++s) {
        ASSERT_TRUE(seen.insert(s));
    }
    EXPECT_EQ(seen.ranges(), 1U);
    EXPECT_FALSE(seen.insert(0));
    EXPECT_FALSE(seen.insert(99'999));
    EXPECT_EQ(seen.highest(), 99'999U);
    EXPECT_TRUE(seen.insert(100'000));
}

TEST(SeenSequences, TellsDuplicatesOutOfOrder) {
    SeenSequences seen;
    EXPECT_TRUE(seen.insert(5));
    EXPECT_TRUE(seen.insert(2));
    EXPECT_TRUE(seen.insert(7));
    EXPECT_EQ(seen.ranges(), 3U);
    EXPECT_FALSE(seen.insert(5));
    EXPECT_TRUE(seen.insert(6));  // joins 5 and 7
    EXPECT_EQ(seen.ranges(), 2U);
    EXPECT_TRUE(seen.insert(4));  // joins the range 5..7 from below
    EXPECT_TRUE(seen.insert(3));  // joins 2 and 4..7
    EXPECT_EQ(seen.ranges(), 1U);
    for (std::uint64_t s = 2; s <= 7; ++s) {
        EXPECT_TRUE(seen.contains(s)) << s;
        EXPECT_FALSE(seen.insert(s)) << s;
    }
    EXPECT_FALSE(seen.contains(1));
    EXPECT_FALSE(seen.contains(8));
    EXPECT_EQ(seen.highest(), 7U);
}

TEST(SeenSequences, KeepsAGapForGood) {
    SeenSequences seen;
    ASSERT_TRUE(seen.insert(0));
    for (std::uint64_t s = 2; s < 50'000; ++s) {  // 1 is lost
        ASSERT_TRUE(seen.insert(s));
    }
    EXPECT_EQ(seen.ranges(), 2U);
    EXPECT_FALSE(seen.contains(1));
    EXPECT_TRUE(seen.insert(1));  // however late
    EXPECT_EQ(seen.ranges(), 1U);
}

TEST(SeenSequences, TakesTheLargestSequence) {
    constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
    SeenSequences seen;
    EXPECT_TRUE(seen.insert(kMax));
    EXPECT_FALSE(seen.insert(kMax));
    EXPECT_TRUE(seen.insert(kMax - 1));
    EXPECT_TRUE(seen.insert(0));
    EXPECT_EQ(seen.ranges(), 2U);
    EXPECT_EQ(seen.highest(), kMax);
}

TEST(SeenSequences, ClearStartsANewRun) {
    SeenSequences seen;
    ASSERT_TRUE(seen.insert(0));
    ASSERT_TRUE(seen.insert(7));
    seen.clear();
    EXPECT_TRUE(seen.empty());
    EXPECT_TRUE(seen.insert(0));
    EXPECT_TRUE(seen.insert(7));
}

TEST(SeenSequences, CountsAndVisitsEverySequenceInOrder) {
    SeenSequences seen;
    EXPECT_EQ(seen.size(), 0U);
    for (const std::uint64_t s : {9U, 3U, 4U, 5U, 12U, 10U}) {
        ASSERT_TRUE(seen.insert(s));
    }
    EXPECT_EQ(seen.size(), 6U);
    std::vector<std::uint64_t> visited;
    seen.for_each([&](std::uint64_t s) { visited.push_back(s); });
    EXPECT_EQ(visited, (std::vector<std::uint64_t>{3, 4, 5, 9, 10, 12}));

    // The top of the range of sequences: the visit ends there and does not wrap.
    constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
    SeenSequences top;
    ASSERT_TRUE(top.insert(kMax));
    ASSERT_TRUE(top.insert(kMax - 1));
    EXPECT_EQ(top.size(), 2U);
    std::vector<std::uint64_t> last;
    top.for_each([&](std::uint64_t s) { last.push_back(s); });
    EXPECT_EQ(last, (std::vector<std::uint64_t>{kMax - 1, kMax}));
}

}  // namespace
}  // namespace anisoflow::transport
