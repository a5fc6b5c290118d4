#pragma once
// Wall-clock times as the wire schema carries them (ns since the Unix epoch, e.g.
// FrameHeader.sent_unix_ns) and as people and NeXus files read them (ISO 8601, UTC).

#include <cstdint>
#include <ctime>
#include <string>

namespace anisoflow {

/// Now, in ns since the Unix epoch (the system clock).
[[nodiscard]] std::int64_t unix_now_ns();

/// The UTC calendar time of `unix_ns`, rounded down to the second (times before 1970 too).
[[nodiscard]] std::tm utc_calendar(std::int64_t unix_ns);

/// ISO 8601 in UTC: "2026-11-24T14:33:17.123456789Z", or "2026-11-24T14:33:17Z" without the
/// nanoseconds.
[[nodiscard]] std::string iso8601_utc(std::int64_t unix_ns, bool with_nanoseconds = true);

}  // namespace anisoflow
