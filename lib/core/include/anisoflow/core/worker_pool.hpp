#pragma once
// A fixed set of threads that run one data-parallel task at a time: run(task) calls task(k) for
// k = 0..size()-1, k = 0 on the calling thread, and returns when all are done. Spawning threads
// per frame costs more than integrating a slice of a small frame; these live as long as the pool.

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace anisoflow {

class WorkerPool {
  public:
    explicit WorkerPool(unsigned size);
    ~WorkerPool();
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    [[nodiscard]] unsigned size() const { return size_; }

    /// Runs task(0..size-1) in parallel and waits. Not re-entrant: one run() at a time.
    void run(const std::function<void(unsigned)>& task);

  private:
    void worker_loop(unsigned index);

    unsigned size_;
    std::vector<std::thread> threads_;
    std::mutex mutex_;
    std::condition_variable start_;
    std::condition_variable done_;
    const std::function<void(unsigned)>* task_ = nullptr;
    std::size_t generation_ = 0;
    unsigned pending_ = 0;
    bool stopping_ = false;
};

}  // namespace anisoflow
