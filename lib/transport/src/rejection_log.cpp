#include "anisoflow/transport/rejection_log.hpp"

#include <utility>

#include <spdlog/spdlog.h>

namespace anisoflow::transport {

bool RejectionLog::log(std::string_view reason, std::string_view error) {
    const auto now = Clock::now();
    std::uint64_t suppressed = 0;
    {
        const std::lock_guard lock(mutex_);
        auto it = seen_.find(reason);
        if (it == seen_.end()) {
            it = seen_.emplace(std::string(reason), Seen{}).first;
        } else if (now - it->second.last < interval_) {
            ++it->second.suppressed;
            return false;
        }
        it->second.last = now;
        suppressed = std::exchange(it->second.suppressed, 0);
    }
    spdlog::warn("message rejected what={} reason={} error=\"{}\" suppressed={}", what_, reason,
                 error, suppressed);
    return true;
}

}  // namespace anisoflow::transport
