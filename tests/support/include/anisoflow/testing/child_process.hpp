#pragma once
// Services as child processes, as the fault tests run them: start with posix_spawn (stdout and
// stderr in a log file), signal, reap, read the log; and the services' Prometheus metrics read
// over HTTP as Prometheus would.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace anisoflow::testing {

/// One process started from `binary args...`, stdin /dev/null, stdout and stderr appended to
/// `log`, extra environment variables added to the test's. SIGKILLed and reaped on destruction
/// if still running. A start failure is a test failure (ADD_FAILURE) and leaves it not running.
class ChildProcess {
  public:
    ChildProcess(const std::string& binary, const std::vector<std::string>& args,
                 std::filesystem::path log, const std::map<std::string, std::string>& env = {});
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    ChildProcess(ChildProcess&&) = delete;
    ChildProcess& operator=(ChildProcess&&) = delete;

    [[nodiscard]] bool running() const { return pid_ > 0 && !status_; }
    [[nodiscard]] pid_t pid() const { return pid_; }
    void signal(int number) const;
    /// The wait status once the child ended within `timeout`, nullopt otherwise.
    std::optional<int> wait_for(std::chrono::milliseconds timeout);
    /// SIGTERM, then the exit code (-1: killed by a signal or not stopped within 10 s).
    int terminate();
    /// SIGKILL and reap: the crash the fault tests inject.
    void kill_hard();
    [[nodiscard]] std::string log() const;
    [[nodiscard]] const std::filesystem::path& log_path() const { return log_; }
    /// The command line and the log, for assertion messages.
    [[nodiscard]] std::string describe() const;

  private:
    std::filesystem::path log_;
    std::string command_;
    pid_t pid_ = -1;
    std::optional<int> status_;
};

/// Waits up to `patience` until `text` appears in the file at `log`, counting from byte `from`.
bool wait_for_text(const std::filesystem::path& log, const std::string& text,
                   std::chrono::milliseconds patience, std::size_t from = 0);

/// The port a service logged at start ("metrics_port=N"), waiting up to `patience` while the
/// child runs; the last such line counts (a restarted service appends to its log).
std::optional<std::uint16_t> logged_metrics_port(const ChildProcess& child,
                                                 std::chrono::milliseconds patience,
                                                 std::size_t from = 0);

/// The body of GET `path` from 127.0.0.1:port over HTTP/1.0 ("" on any failure; 1 s timeout).
std::string http_get(std::uint16_t port, const std::string& path);

/// The value of one sample line (`series` with its labels, as served) of Prometheus text, NaN
/// when absent.
double metric_value(const std::string& text, const std::string& series);

/// VmRSS of a process in bytes (0 when it cannot be read).
std::uint64_t resident_bytes(pid_t pid);

/// Open file descriptors of a process (-1 when they cannot be listed).
int open_fd_count(pid_t pid);

}  // namespace anisoflow::testing
