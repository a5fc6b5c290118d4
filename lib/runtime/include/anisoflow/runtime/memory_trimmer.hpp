#pragma once
// Gives a service's freed memory back to the system every few seconds (docs/performance.md,
// "Soak"). Frame buffers (2-8 MB) and cake parts come from glibc's thread heaps once its
// dynamic mmap threshold has risen past their size: the fast path, reused without page faults.
// But a heap keeps the most ever in flight resident after a burst, which a long run sees as
// resident memory growing in steps. malloc_trim(0) returns the free pages of every arena; every
// few seconds it costs the page faults of re-touching them once, where mapping every frame
// afresh (a fixed M_MMAP_THRESHOLD) cost ~3 ms per 8 MB frame on the development VM and cut the
// whole chain's throughput threefold (bench_pipeline).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace anisoflow::runtime {

class MemoryTrimmer {
  public:
    /// Starts a thread that trims every `interval` until destruction.
    explicit MemoryTrimmer(std::chrono::milliseconds interval);
    ~MemoryTrimmer();
    MemoryTrimmer(const MemoryTrimmer&) = delete;
    MemoryTrimmer& operator=(const MemoryTrimmer&) = delete;
    MemoryTrimmer(MemoryTrimmer&&) = delete;
    MemoryTrimmer& operator=(MemoryTrimmer&&) = delete;

    /// Trims done so far.
    [[nodiscard]] std::uint64_t trims() const;

  private:
    void run(std::chrono::milliseconds interval);

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::uint64_t trims_ = 0;
    std::thread thread_;  // last: starts once the members above exist
};

/// How often a service trims (run_service).
inline constexpr std::chrono::milliseconds kMemoryTrimInterval{5000};

}  // namespace anisoflow::runtime
