#pragma once
// Stopping a service: a StopSource that SIGINT/SIGTERM (StopSignals), a failing stage or a test
// can trigger, and StopTokens that service loops check between polls. std::stop_source is not
// async-signal-safe to request, hence this small one (an atomic flag and an eventfd).

#include <chrono>
#include <memory>

#include "anisoflow/core/result.hpp"

namespace anisoflow::runtime {

namespace detail {
struct StopState;
}

/// Read side of a StopSource; cheap to copy, safe to use from any thread.
class StopToken {
  public:
    [[nodiscard]] bool stop_requested() const noexcept;
    /// Sleeps until stop is requested or `timeout` passes; returns stop_requested().
    bool wait_for(std::chrono::milliseconds timeout) const;
    /// A file descriptor that becomes (and stays) readable once stop is requested, to poll next
    /// to sockets (zmq::poll takes plain fds), so a loop wakes at once instead of at its timeout.
    [[nodiscard]] int fd() const noexcept;

  private:
    friend class StopSource;
    explicit StopToken(std::shared_ptr<const detail::StopState> state) : state_(std::move(state)) {}
    std::shared_ptr<const detail::StopState> state_;
};

/// Write side: request_stop() once, from any thread or a signal handler; later calls do nothing.
class StopSource {
  public:
    /// Fails only when the process is out of file descriptors.
    [[nodiscard]] static Result<StopSource> create();

    void request_stop() const noexcept;
    [[nodiscard]] bool stop_requested() const noexcept;
    [[nodiscard]] StopToken token() const { return StopToken(state_); }

  private:
    friend class StopSignals;
    explicit StopSource(std::shared_ptr<detail::StopState> state) : state_(std::move(state)) {}
    std::shared_ptr<detail::StopState> state_;
};

/// While alive, SIGINT and SIGTERM request stop on `source` (one StopSignals per process). Each
/// handler is one-shot (SA_RESETHAND): a second Ctrl-C kills a service that does not stop. The
/// previous handlers are restored on destruction.
class StopSignals {
  public:
    [[nodiscard]] static Result<StopSignals> install(const StopSource& source);
    ~StopSignals();
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;
    StopSignals(StopSignals&& other) noexcept;
    StopSignals& operator=(StopSignals&&) = delete;

    /// The signal that requested stop (SIGINT, SIGTERM), or 0 when none came.
    [[nodiscard]] static int received_signal() noexcept;

  private:
    StopSignals() = default;
    bool installed_ = false;
};

}  // namespace anisoflow::runtime
