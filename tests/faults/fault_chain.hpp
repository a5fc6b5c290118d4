#pragma once
// The whole streaming chain as child processes for the fault suite (issue 6, docs/faults.md):
// anisoflow-ingest (anisoflow stream source, raw frame feed on), two reduce workers,
// anisoflow-analyze, anisoflow-archive and anisoflow-gateway over ipc:// sockets in a short
// scratch directory, fed by `anisoflow simulate --stream`. Any service can be SIGKILLed and
// started again with the same command line; its log continues in the same file.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "anisoflow/testing/child_process.hpp"

namespace anisoflow::faults {

// The suite runs uninstrumented (scripts/test.sh) and under ASan+UBSan and ThreadSanitizer
// (scripts/test-sanitizers.sh), where every service runs several times slower: the time limits
// of the suite and the chain's timeouts stretch by this factor there, so that a sanitized run
// fails on what the sanitizer finds rather than on a deadline set for -O2 code. The figures
// table shows the times as measured.
#if defined(__SANITIZE_THREAD__)
inline constexpr double kSanitizerSlowdown = 8.0;
#elif defined(__SANITIZE_ADDRESS__)
inline constexpr double kSanitizerSlowdown = 3.0;
#else
inline constexpr double kSanitizerSlowdown = 1.0;
#endif

/// `limit` stretched by kSanitizerSlowdown.
template <typename Rep, typename Period>
[[nodiscard]] constexpr std::chrono::milliseconds stretched(
    std::chrono::duration<Rep, Period> limit) {
    return std::chrono::milliseconds(static_cast<std::int64_t>(
        std::chrono::duration<double, std::milli>(limit).count() * kSanitizerSlowdown));
}

enum class Service { kIngest, kReduce0, kReduce1, kAnalyze, kArchive, kGateway };

/// "ingest", "reduce-0", ... (the instance name, also the log's name).
std::string service_name(Service service);

/// The simulated run every round streams: small frames, so a round takes seconds.
struct SimulatedRun {
    std::string run_id;
    std::size_t darks = 2;
    std::size_t frames_per_orientation = 10;
    double fps = 8.0;
    std::size_t rows = 128;
    std::size_t cols = 128;
    std::uint64_t seed = 11;

    /// Every frame of the run: darks, one flat, P then N data frames.
    [[nodiscard]] std::size_t frame_count() const { return darks + 1 + 2 * frames_per_orientation; }
    /// Sequence numbers of the data frames (after the darks and the flat).
    [[nodiscard]] std::vector<std::uint64_t> data_sequences() const;
    /// The simulator's options that fix the frames (the same in `--stream` and `--out-dir` runs).
    [[nodiscard]] std::vector<std::string> frame_options() const;
    /// Seconds the simulator needs to send the run at `fps`.
    [[nodiscard]] double duration_s() const { return static_cast<double>(frame_count()) / fps; }
};

class FaultChain {
  public:
    /// Scratch directory for logs and runs; sockets in a short directory under /tmp.
    explicit FaultChain(std::string name);
    ~FaultChain();
    FaultChain(const FaultChain&) = delete;
    FaultChain& operator=(const FaultChain&) = delete;
    FaultChain(FaultChain&&) = delete;
    FaultChain& operator=(FaultChain&&) = delete;

    /// Extra `--set key=value` overrides of one service (before start()).
    void set(Service service, const std::string& key, const std::string& value);
    /// Environment variables of one service (before its start).
    void set_env(Service service, const std::string& key, const std::string& value);
    /// Runs the service under `prefix...` (e.g. unshare), before its start.
    void set_prefix(Service service, std::vector<std::string> prefix);

    /// Starts every service and waits until each said it is ready and ingest saw both workers.
    /// False (with a test failure) when one did not come up within `patience`.
    bool start(std::chrono::milliseconds patience);
    /// Starts (or restarts) one service; its log continues.
    void start(Service service);
    /// SIGKILL and reap; notes where every log stood.
    void kill(Service service);
    /// SIGTERM (an operator's restart) and reap, as kill() otherwise; the exit code.
    int stop(Service service);
    /// Waits until a (re)started service is back in the chain: its ready line since the last
    /// kill, plus: ingest names a restarted worker as joined; a restarted ingest names both
    /// workers; the gateway answers /api/health. Returns the seconds from `since`.
    std::optional<double> wait_rejoined(Service service,
                                        std::chrono::steady_clock::time_point since,
                                        std::chrono::milliseconds patience);

    void start_simulator(const SimulatedRun& run);
    testing::ChildProcess& simulator() { return *simulator_; }
    testing::ChildProcess& child(Service service);
    [[nodiscard]] std::size_t log_size(Service service) const;
    /// The metrics port the service logged last (its current process).
    std::optional<std::uint16_t> metrics_port(Service service);
    /// GET /metrics of the service ("" when unreachable).
    std::string metrics(Service service);
    /// SIGTERM to every running service; the exit codes by name (-1: signal or timeout).
    std::map<std::string, int> stop_all();

    [[nodiscard]] std::string ipc(const std::string& name) const;
    [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }
    [[nodiscard]] std::filesystem::path runs_dir() const { return dir_ / "runs"; }
    [[nodiscard]] std::filesystem::path log(const std::string& name) const;
    /// Every log, for failure messages.
    [[nodiscard]] std::string logs() const;

  private:
    struct Spec {
        std::string binary;
        std::vector<std::string> args;
        std::map<std::string, std::string> env;
        std::vector<std::string> prefix;
        std::unique_ptr<testing::ChildProcess> process;
    };
    Spec& spec(Service service);
    [[nodiscard]] const Spec& spec(Service service) const;

    std::string name_;
    std::filesystem::path dir_;
    std::filesystem::path sockets_;
    std::map<Service, Spec> services_;
    std::map<Service, std::size_t> kill_offsets_;
    std::unique_ptr<testing::ChildProcess> simulator_;
};

}  // namespace anisoflow::faults
