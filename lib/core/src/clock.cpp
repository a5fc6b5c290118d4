#include "anisoflow/core/clock.hpp"

#include <chrono>
#include <utility>

#include <fmt/format.h>

namespace anisoflow {

namespace {

constexpr std::int64_t kNsPerSecond = 1'000'000'000;

// Whole seconds and the ns within the second, by floor division (before 1970 as well).
std::pair<std::int64_t, std::int64_t> split_seconds(std::int64_t unix_ns) {
    std::int64_t seconds = unix_ns / kNsPerSecond;
    std::int64_t nanoseconds = unix_ns % kNsPerSecond;
    if (nanoseconds < 0) {
        nanoseconds += kNsPerSecond;
        --seconds;
    }
    return {seconds, nanoseconds};
}

}  // namespace

std::int64_t unix_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::tm utc_calendar(std::int64_t unix_ns) {
    const auto time = static_cast<std::time_t>(split_seconds(unix_ns).first);
    std::tm utc{};
    gmtime_r(&time, &utc);
    return utc;
}

std::string iso8601_utc(std::int64_t unix_ns, bool with_nanoseconds) {
    const std::tm utc = utc_calendar(unix_ns);
    const std::string seconds =
        fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", utc.tm_year + 1900, utc.tm_mon + 1,
                    utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
    return with_nanoseconds ? fmt::format("{}.{:09}Z", seconds, split_seconds(unix_ns).second)
                            : seconds + "Z";
}

}  // namespace anisoflow
