#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>

namespace anisoflow::transport {

/// The sequence numbers of one run seen so far, as ranges of consecutive numbers: memory grows
/// with the gaps (frames lost, or numbers another service took, such as darks and flats), not
/// with the frames. A set of every sequence grew by ~40 to 50 bytes a frame for the whole run,
/// a visible drift in the 30-minute soak (docs/performance.md, "Soak").
class SeenSequences {
  public:
    /// True the first time `sequence` is seen.
    bool insert(std::uint64_t sequence) {
        auto next = ranges_.upper_bound(sequence);  // the first range starting after it
        const bool has_previous = next != ranges_.begin();
        const auto previous = has_previous ? std::prev(next) : ranges_.end();
        if (has_previous && previous->second >= sequence) {
            return false;
        }
        const bool joins_previous = has_previous && previous->second + 1 == sequence;
        const bool joins_next = next != ranges_.end() && next->first - 1 == sequence;
        if (joins_previous && joins_next) {
            previous->second = next->second;
            ranges_.erase(next);
        } else if (joins_previous) {
            previous->second = sequence;
        } else if (joins_next) {
            const std::uint64_t last = next->second;
            ranges_.emplace_hint(ranges_.erase(next), sequence, last);
        } else {
            ranges_.emplace_hint(next, sequence, sequence);
        }
        return true;
    }

    [[nodiscard]] bool contains(std::uint64_t sequence) const {
        const auto next = ranges_.upper_bound(sequence);
        return next != ranges_.begin() && std::prev(next)->second >= sequence;
    }

    [[nodiscard]] bool empty() const { return ranges_.empty(); }

    /// The highest sequence seen; nullopt before the first.
    [[nodiscard]] std::optional<std::uint64_t> highest() const {
        if (ranges_.empty()) {
            return std::nullopt;
        }
        return ranges_.rbegin()->second;
    }

    /// Ranges of consecutive sequences held (one more than the gaps between them).
    [[nodiscard]] std::size_t ranges() const { return ranges_.size(); }

    /// How many sequences are held.
    [[nodiscard]] std::uint64_t size() const {
        std::uint64_t held = 0;
        for (const auto& [first, last] : ranges_) {
            held += last - first + 1;
        }
        return held;
    }

    /// Calls `visit(sequence)` for every sequence held, in increasing order.
    template <typename Visit>
    void for_each(Visit&& visit) const {
        for (const auto& [first, last] : ranges_) {
            for (std::uint64_t s = first;; ++s) {
                visit(s);
                if (s == last) {
                    break;
                }
            }
        }
    }

    /// Calls `visit(first, last)` for every range of consecutive sequences held (both ends
    /// included), in increasing order.
    template <typename Visit>
    void for_each_range(Visit&& visit) const {
        for (const auto& [first, last] : ranges_) {
            visit(first, last);
        }
    }

    void clear() { ranges_.clear(); }

  private:
    std::map<std::uint64_t, std::uint64_t> ranges_;  // first -> last, inclusive, disjoint
};

}  // namespace anisoflow::transport
