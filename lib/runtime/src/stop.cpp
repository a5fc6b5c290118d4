#include "anisoflow/runtime/stop.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <system_error>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace anisoflow::runtime {

namespace detail {

struct StopState {
    std::atomic<bool> stopped{false};
    int fd = -1;  // eventfd: readable once stopped (the count is never read back)

    StopState() = default;
    StopState(const StopState&) = delete;
    StopState& operator=(const StopState&) = delete;
    ~StopState() {
        if (fd >= 0) {
            ::close(fd);
        }
    }

    // Async-signal-safe: a lock-free atomic and write(2).
    void request() noexcept {
        if (!stopped.exchange(true)) {
            const std::uint64_t one = 1;
            const int saved_errno = errno;
            [[maybe_unused]] const auto written = ::write(fd, &one, sizeof(one));
            errno = saved_errno;
        }
    }
};

}  // namespace detail

namespace {

static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");
static_assert(std::atomic<detail::StopState*>::is_always_lock_free);

constexpr std::array kStopSignals = {SIGINT, SIGTERM};

// The state the handler writes to; set while a StopSignals is alive.
std::atomic<detail::StopState*> g_signal_target{nullptr};
std::atomic<int> g_received_signal{0};
// Held by StopSignals so the state outlives the handler's use of it.
std::shared_ptr<detail::StopState> g_signal_state;               // NOLINT: guarded by g_installed
std::array<struct sigaction, kStopSignals.size()> g_previous{};  // NOLINT: as above
std::atomic<bool> g_installed{false};

extern "C" void on_stop_signal(int signal_number) {
    g_received_signal.store(signal_number);
    if (detail::StopState* state = g_signal_target.load()) {
        state->request();
    }
}

}  // namespace

bool StopToken::stop_requested() const noexcept { return state_->stopped.load(); }

bool StopToken::wait_for(std::chrono::milliseconds timeout) const {
    if (stop_requested()) {
        return true;
    }
    pollfd item{state_->fd, POLLIN, 0};
    // EINTR (a signal arrived) is fine: the caller looks at the flag and loops.
    ::poll(&item, 1, static_cast<int>(timeout.count()));
    return stop_requested();
}

int StopToken::fd() const noexcept { return state_->fd; }

Result<StopSource> StopSource::create() {
    auto state = std::make_shared<detail::StopState>();
    state->fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (state->fd < 0) {
        return fail(ErrorCode::kIo, "cannot create the stop eventfd: {}",
                    std::system_category().message(errno));
    }
    return StopSource(std::move(state));
}

void StopSource::request_stop() const noexcept { state_->request(); }

bool StopSource::stop_requested() const noexcept { return state_->stopped.load(); }

Result<StopSignals> StopSignals::install(const StopSource& source) {
    if (g_installed.exchange(true)) {
        return fail(ErrorCode::kInvalidArgument,
                    "stop signals are already installed in this process");
    }
    g_signal_state = source.state_;
    g_received_signal.store(0);
    g_signal_target.store(g_signal_state.get());
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND | SA_RESTART;
    for (std::size_t i = 0; i < kStopSignals.size(); ++i) {
        if (::sigaction(kStopSignals[i], &action, &g_previous[i]) != 0) {
            const int error = errno;
            for (std::size_t j = 0; j < i; ++j) {
                ::sigaction(kStopSignals[j], &g_previous[j], nullptr);
            }
            g_signal_target.store(nullptr);
            g_signal_state.reset();
            g_installed.store(false);
            return fail(ErrorCode::kIo, "cannot install the handler of signal {}: {}",
                        kStopSignals[i], std::system_category().message(error));
        }
    }
    StopSignals signals;
    signals.installed_ = true;
    return signals;
}

StopSignals::StopSignals(StopSignals&& other) noexcept : installed_(other.installed_) {
    other.installed_ = false;
}

StopSignals::~StopSignals() {
    if (!installed_) {
        return;
    }
    for (std::size_t i = 0; i < kStopSignals.size(); ++i) {
        ::sigaction(kStopSignals[i], &g_previous[i], nullptr);
    }
    g_signal_target.store(nullptr);
    // g_signal_state stays until the next install(): a handler already running on another thread
    // may still hold the pointer it loaded.
    g_installed.store(false);
}

int StopSignals::received_signal() noexcept { return g_received_signal.load(); }

}  // namespace anisoflow::runtime
