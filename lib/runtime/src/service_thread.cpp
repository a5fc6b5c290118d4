#include "anisoflow/runtime/service_thread.hpp"

#include <utility>

namespace anisoflow::runtime {

Result<std::unique_ptr<ServiceThread>> ServiceThread::start(std::string name, Loop loop) {
    auto stop = StopSource::create();
    if (!stop) {
        return tl::unexpected(stop.error().with_context("service thread " + name));
    }
    // Not make_unique: the constructor is private.
    return std::unique_ptr<ServiceThread>(
        new ServiceThread(std::move(name), std::move(*stop), std::move(loop)));
}

ServiceThread::ServiceThread(std::string name, StopSource stop, Loop loop)
    : stop_(std::move(stop)),
      context_{std::move(name), stop_, registry_, 0},
      thread_([this, loop = std::move(loop)] { result_ = loop(context_); }) {}

ServiceThread::~ServiceThread() { (void)stop(); }

Result<void> ServiceThread::stop() {
    stop_.request_stop();
    if (thread_.joinable()) {
        thread_.join();
    }
    return result_;
}

std::string ServiceThread::metrics() const { return registry_.serialize(); }

}  // namespace anisoflow::runtime
