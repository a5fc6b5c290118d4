#include "anisoflow/runtime/memory_trimmer.hpp"

#include <malloc.h>

namespace anisoflow::runtime {

MemoryTrimmer::MemoryTrimmer(std::chrono::milliseconds interval)
    : thread_([this, interval] { run(interval); }) {}

MemoryTrimmer::~MemoryTrimmer() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

std::uint64_t MemoryTrimmer::trims() const {
    const std::lock_guard lock(mutex_);
    return trims_;
}

void MemoryTrimmer::run(std::chrono::milliseconds interval) {
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, interval, [this] { return stopping_; })) {
        lock.unlock();
        ::malloc_trim(0);
        lock.lock();
        ++trims_;
    }
}

}  // namespace anisoflow::runtime
