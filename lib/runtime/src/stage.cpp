#include "anisoflow/runtime/stage.hpp"

#include <exception>
#include <utility>

#include <spdlog/spdlog.h>

namespace anisoflow::runtime {

StageThread::StageThread(std::string name, const StopSource& stop, Body body)
    : name_(std::move(name)), stop_(stop) {
    thread_ = std::thread([this, body = std::move(body)] {
        Result<void> result;
        try {
            result = body(stop_.token());
        } catch (const std::exception& error) {
            // A throwing third-party call that its wrapper missed: stop cleanly, do not terminate.
            result = fail(ErrorCode::kIo, "unexpected exception: {}", error.what());
        }
        if (!result) {
            error_ = result.error().with_context(fmt::format("stage {}", name_));
            spdlog::error("stage failed stage={} error=\"{}\"", name_, result.error().message);
            stop_.request_stop();
        }
    });
}

StageThread::~StageThread() {
    if (thread_.joinable()) {
        stop_.request_stop();
        thread_.join();
    }
}

Result<void> StageThread::join() {
    if (thread_.joinable()) {
        thread_.join();
    }
    if (error_) {
        return tl::unexpected(*error_);
    }
    return {};
}

}  // namespace anisoflow::runtime
