#include "anisoflow/core/clock.hpp"

#include <chrono>
#include <cstdint>

#include <gtest/gtest.h>

namespace anisoflow {
namespace {

TEST(Clock, Iso8601UtcKeepsEveryNanosecond) {
    // 2026-11-24T14:33:17Z is 1795530797 s after the epoch (date -u -d ... +%s).
    constexpr std::int64_t kSeconds = 1'795'530'797;
    EXPECT_EQ(iso8601_utc(kSeconds * 1'000'000'000 + 123'456'789),
              "2026-11-24T14:33:17.123456789Z");
    EXPECT_EQ(iso8601_utc(kSeconds * 1'000'000'000 + 123'456'789, false), "2026-11-24T14:33:17Z");
    EXPECT_EQ(iso8601_utc(0), "1970-01-01T00:00:00.000000000Z");
}

TEST(Clock, TimesBeforeTheEpochRoundDown) {
    // 1 ns before the epoch is the last second of 1969, not its first.
    EXPECT_EQ(iso8601_utc(-1), "1969-12-31T23:59:59.999999999Z");
    EXPECT_EQ(utc_calendar(-1).tm_year, 69);
    EXPECT_EQ(utc_calendar(-1).tm_sec, 59);
}

TEST(Clock, NowIsTheSystemClock) {
    const auto before = std::chrono::system_clock::now();
    const std::int64_t now = unix_now_ns();
    const auto after = std::chrono::system_clock::now();
    const auto ns = [](auto t) {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    };
    EXPECT_LE(ns(before), now);
    EXPECT_LE(now, ns(after));
}

}  // namespace
}  // namespace anisoflow
