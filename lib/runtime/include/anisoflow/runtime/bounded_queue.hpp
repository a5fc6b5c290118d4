#pragma once
// A bounded FIFO between two threads of a service: the producer waits while it is full, so the
// producer stops reading its socket and the sender's own queue fills (backpressure, never a
// drop), and wakes when the consumer takes an item or stop is requested. Ingest's source ->
// dispatch queue and reduce's receive -> integration queue are both this.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>

#include "anisoflow/runtime/stop.hpp"

namespace anisoflow::runtime {

template <class T>
class BoundedQueue {
  public:
    /// `stop_check`: how often a waiting push() looks at its stop token (a StopToken cannot wake
    /// a condition variable).
    explicit BoundedQueue(std::size_t capacity,
                          std::chrono::milliseconds stop_check = std::chrono::milliseconds{50})
        : capacity_(capacity), stop_check_(stop_check) {}

    /// Appends `item`, waiting while the queue holds `capacity` items; false (the item dropped
    /// unqueued) when stop was requested before there was room.
    bool push(T item, const StopToken& stop) {
        std::unique_lock lock(mutex_);
        while (items_.size() >= capacity_) {
            if (stop.stop_requested()) {
                return false;
            }
            changed_.wait_for(lock, stop_check_);
        }
        items_.push_back(std::move(item));
        changed_.notify_all();
        return true;
    }

    /// The oldest item, or nullopt at once when empty.
    std::optional<T> try_pop() { return pop(std::chrono::milliseconds::zero()); }

    /// The oldest item, waiting up to `timeout` for one.
    std::optional<T> pop(std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        if (!changed_.wait_for(lock, timeout, [&] { return !items_.empty(); })) {
            return std::nullopt;
        }
        T item = std::move(items_.front());
        items_.pop_front();
        changed_.notify_all();
        return item;
    }

    [[nodiscard]] std::size_t size() const {
        std::lock_guard lock(mutex_);
        return items_.size();
    }
    [[nodiscard]] std::size_t capacity() const { return capacity_; }

  private:
    std::size_t capacity_;
    std::chrono::milliseconds stop_check_;
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<T> items_;
};

}  // namespace anisoflow::runtime
