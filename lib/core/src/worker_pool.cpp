#include "anisoflow/core/worker_pool.hpp"

#include <algorithm>

namespace anisoflow {

WorkerPool::WorkerPool(unsigned size) : size_(std::max(1U, size)) {
    threads_.reserve(size_ - 1U);
    for (unsigned k = 1; k < size_; ++k) {
        threads_.emplace_back([this, k] { worker_loop(k); });
    }
}

WorkerPool::~WorkerPool() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    start_.notify_all();
    for (auto& thread : threads_) {
        thread.join();
    }
}

void WorkerPool::run(const std::function<void(unsigned)>& task) {
    if (size_ == 1) {
        task(0);
        return;
    }
    {
        const std::lock_guard lock(mutex_);
        task_ = &task;
        pending_ = size_ - 1U;
        ++generation_;
    }
    start_.notify_all();
    task(0);
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    task_ = nullptr;
}

void WorkerPool::worker_loop(unsigned index) {
    std::size_t seen = 0;
    for (;;) {
        const std::function<void(unsigned)>* task = nullptr;
        {
            std::unique_lock lock(mutex_);
            start_.wait(lock, [&] { return stopping_ || generation_ != seen; });
            if (stopping_) {
                return;
            }
            seen = generation_;
            task = task_;
        }
        (*task)(index);
        {
            const std::lock_guard lock(mutex_);
            --pending_;
        }
        done_.notify_one();
    }
}

}  // namespace anisoflow
