#pragma once
// The log side of a counted rejection (docs/protocol.md, "What decode() rejects"): one warn line
// naming the reason, at most once a second per reason, so that a flood of hostile messages costs
// a counter increment each and not a log line each. The metric counts every one.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "anisoflow/transport/message.hpp"

namespace anisoflow::transport {

/// One per receiving service (or socket); safe to share between its threads.
class RejectionLog {
  public:
    using Clock = std::chrono::steady_clock;

    /// `what` names the service or socket in the line, e.g. "frames_in".
    explicit RejectionLog(std::string what, Clock::duration interval = std::chrono::seconds(1))
        : what_(std::move(what)), interval_(interval) {}

    /// Logs `message rejected what=... reason=... error="..." suppressed=N` unless a line with
    /// this reason was logged less than the interval ago (then it is only counted as suppressed).
    /// Returns whether it logged.
    bool log(std::string_view reason, std::string_view error);
    bool log(const Rejection& rejection) {
        return log(to_string(rejection.reason), rejection.error.message);
    }

  private:
    struct Seen {
        Clock::time_point last;
        std::uint64_t suppressed = 0;
    };
    std::string what_;
    Clock::duration interval_;
    std::mutex mutex_;
    std::map<std::string, Seen, std::less<>> seen_;
};

}  // namespace anisoflow::transport
