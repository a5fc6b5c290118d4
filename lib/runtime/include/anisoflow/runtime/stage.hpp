#pragma once
// A stage of a service (receive, integrate, send...) on its own thread. A stage that fails stops
// the whole service, so its siblings wind down instead of waiting for input that will not come.

#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "anisoflow/core/result.hpp"
#include "anisoflow/runtime/stop.hpp"

namespace anisoflow::runtime {

class StageThread {
  public:
    using Body = std::function<Result<void>(const StopToken&)>;

    /// Starts `body` at once. When it returns an error (or throws), the error is logged and stop
    /// is requested on `stop`.
    StageThread(std::string name, const StopSource& stop, Body body);
    /// Requests stop and joins, if join() was not called.
    ~StageThread();
    StageThread(const StageThread&) = delete;
    StageThread& operator=(const StageThread&) = delete;
    StageThread(StageThread&&) = delete;
    StageThread& operator=(StageThread&&) = delete;

    /// Waits for the stage to return; its error is prefixed with the stage name.
    [[nodiscard]] Result<void> join();
    [[nodiscard]] const std::string& name() const { return name_; }

  private:
    std::string name_;
    StopSource stop_;
    std::optional<Error> error_;  // written by the thread, read after join
    std::thread thread_;
};

}  // namespace anisoflow::runtime
