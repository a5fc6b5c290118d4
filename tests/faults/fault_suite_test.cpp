// The fault-injection suite (issue 6, deliverable 1; docs/faults.md). Each round runs the real
// chain (fault_chain.hpp), streams one simulated run and injects one fault at a moment drawn
// from the round's seed: SIGKILL of a service followed by its restart, or a stalled consumer.
// After every round:
//  - every frame the simulator sent is in the run file (raw frame, and its cake for a data
//    frame) or named missing by sequence number in the run file's `run_end_detail` or analyze's
//    final log line, never silently absent;
//  - the final result equals `anisoflow analyze` over the data frames it holds (all of them, or
//    all but those a restarted analyze names unseen) written to files (SUMMARY.json numbers to
//    1e-9 relative);
//  - the run file opens and holds what was flushed before the fault;
//  - a restarted service is back in the chain within 5 s;
//  - every service exits 0 on SIGTERM at the end.
// The figures (rounds, frames sent, frames lost, time to rejoin) are printed as a table at the
// end. ANISOFLOW_FAULT_SEED=N repeats a run's moments; without it each run draws a new seed.

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <nlohmann/json.hpp>
#include <signal.h>  // NOLINT(modernize-deprecated-headers): SIGSTOP/SIGCONT are POSIX
#include <unistd.h>
#include <zmq.hpp>

#include "anisoflow/runtime/disk_room.hpp"
#include "anisoflow/testing/cli_runner.hpp"
#include "anisoflow/testing/hdf5_values.hpp"
#include "anisoflow/testing/test_paths.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/socket.hpp"

#include "fault_chain.hpp"

namespace anisoflow::faults {
namespace {

using anisoflow::testing::read_fixed_string;
using anisoflow::testing::read_u64;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Only reached when something is broken; a round takes ~10 s.
constexpr auto kPatience = stretched(60s);
// Issue 6: a restarted service rejoins within 5 s (stretched under a sanitizer: fault_chain.hpp).
constexpr double kRejoinLimitS = 5.0 * kSanitizerSlowdown;
// AddressSanitizer keeps freed memory in quarantine and ThreadSanitizer's shadow grows with use:
// there resident memory says nothing of our queues' bounds, so the stall rounds check ingest's
// memory in the uninstrumented build only (scripts/test.sh).
constexpr bool kResidentMemoryMeaningful = kSanitizerSlowdown == 1.0;
// The live result and `anisoflow analyze` differ only in the order of floating-point sums.
constexpr double kSummationOrderRelativeTolerance = 1e-9;

// ---------------------------------------------------------------------------------------------
// Figures of every round, printed when the suite ends.

struct RoundFigures {
    std::string round;
    std::uint64_t seed = 0;
    std::string moment;
    std::size_t frames_sent = 0;
    std::size_t raw_archived = 0;
    std::size_t cakes_expected = 0;
    std::size_t cakes_archived = 0;
    std::size_t reported_missing = 0;
    std::size_t silently_absent = 0;
    // Kill of ingest: frames the restarted ingest refused (no run: counted; 0 since it resumes
    // the run), and frames the killed one had taken and not sent (named missing by archive).
    std::size_t refused = 0;
    std::size_t died_with_ingest = 0;
    std::optional<double> rejoin_s;
    std::string result;  // "= offline", "n/a (frames missing)", ...
};

std::vector<RoundFigures>& figures() {
    static std::vector<RoundFigures> all;
    return all;
}

std::uint64_t suite_seed() {
    static const std::uint64_t seed = [] {
        // NOLINTNEXTLINE(concurrency-mt-unsafe): read once, before any thread starts
        if (const char* fixed = std::getenv("ANISOFLOW_FAULT_SEED")) {
            return static_cast<std::uint64_t>(std::stoull(fixed));
        }
        return static_cast<std::uint64_t>(std::random_device{}());
    }();
    return seed;
}

class FigureReport : public ::testing::Environment {
  public:
    // The table goes to stdout and to fault_suite_figures.txt in the working directory, which
    // scripts/test.sh prints after CTest (CTest shows a passing test's output to nobody).
    void TearDown() override {
        std::size_t sent = 0;
        std::size_t lost = 0;
        std::size_t silent = 0;
        std::size_t died = 0;
        std::string table =
            "fault suite figures (ANISOFLOW_FAULT_SEED=" + std::to_string(suite_seed()) + ")\n" +
            fmt::format(
                "{:<14} {:>20} {:<38} {:>5} {:>8} {:>11} {:>7} {:>7} {:>6} {:>6} "
                "{:>6} {}\n",
                "round", "seed", "moment", "sent", "raw kept", "cakes kept", "named", "refused",
                "died", "silent", "rejoin", "result");
        for (const RoundFigures& f : figures()) {
            const std::size_t round_lost =
                (f.frames_sent - f.raw_archived) + (f.cakes_expected - f.cakes_archived);
            sent += f.frames_sent;
            lost += round_lost;
            silent += f.silently_absent;
            died += f.died_with_ingest;
            table += fmt::format(
                "{:<14} {:>20} {:<38} {:>5} {:>8} {:>5}/{:<5} {:>7} {:>7} {:>6} {:>6} {:>6} {}\n",
                f.round, f.seed, f.moment, f.frames_sent, f.raw_archived, f.cakes_archived,
                f.cakes_expected, f.reported_missing, f.refused, f.died_with_ingest,
                f.silently_absent,
                f.rejoin_s ? fmt::format("{:.2f}s", *f.rejoin_s) : std::string("-"), f.result);
        }
        table += fmt::format(
            "rounds {}  frames sent {}  frames lost {} (each named missing by sequence; taken "
            "down with a killed ingest: {})  silently absent {}\n",
            figures().size(), sent, lost, died, silent);
        std::cout << "\n" << table << "\n";
        std::ofstream("fault_suite_figures.txt") << table;
    }
};

const auto* const kReport = ::testing::AddGlobalTestEnvironment(new FigureReport);

// ---------------------------------------------------------------------------------------------
// Reading the run file back.

struct RunFile {
    bool opened = false;
    std::string state;
    std::string end_detail;
    std::set<std::uint64_t> raw;         // /entry/data/sequence and the flat fields
    std::multiset<std::uint64_t> cakes;  // /entry/reduced/sequence (a duplicate would show)
};

RunFile read_run_file(const fs::path& path) {
    RunFile run;
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
    if (file < 0) {
        return run;
    }
    run.opened = true;
    run.state = read_fixed_string(file, "/entry/run_state");
    run.end_detail = read_fixed_string(file, "/entry/run_end_detail");
    for (const std::uint64_t s : read_u64(file, "/entry/data/sequence")) {
        run.raw.insert(s);
    }
    for (const std::uint64_t s : read_u64(file, "/entry/instrument/detector/flatfield_sequence")) {
        run.raw.insert(s);
    }
    for (const std::uint64_t s : read_u64(file, "/entry/reduced/sequence")) {
        run.cakes.insert(s);
    }
    H5Fclose(file);
    return run;
}

// Sequence numbers a "[a,b,c]" list names (analyze's unseen_sequences, archive's details).
std::set<std::uint64_t> sequences_named(const std::string& text, const std::string& key) {
    std::set<std::uint64_t> named;
    const std::regex list(key + R"(=\[([0-9,]*)\])");
    for (std::sregex_iterator it(text.begin(), text.end(), list), end; it != end; ++it) {
        const std::string items = (*it)[1];
        std::size_t at = 0;
        while (at < items.size()) {
            const std::size_t comma = items.find(',', at);
            named.insert(std::stoull(items.substr(at, comma - at)));
            at = comma == std::string::npos ? items.size() : comma + 1;
        }
    }
    return named;
}

// ---------------------------------------------------------------------------------------------
// The offline reference: the same frames written to files and analysed by `anisoflow analyze`.

const nlohmann::json& offline_summary(const SimulatedRun& run) {
    static std::map<std::vector<std::string>, nlohmann::json> cache;
    const auto key = run.frame_options();
    if (const auto found = cache.find(key); found != cache.end()) {
        return found->second;
    }
    const auto reference =
        testing::run_offline_analysis(ANISOFLOW_CLI, testing::scratch_dir(), key);
    EXPECT_EQ(reference.simulated.exit_code, 0) << testing::describe(reference.simulated);
    EXPECT_EQ(reference.analyzed.exit_code, 0) << testing::describe(reference.analyzed);
    std::ifstream in(reference.summary_json);
    return cache[key] = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

// The offline reference of a result that holds only some data frames (a killed analyze took the
// others with it): the same analysis over those frames, P index i being sequence darks + 1 + i
// and N index i sequence darks + 1 + frames_per_orientation + i. Not cached: each is a one-off.
nlohmann::json offline_summary_of(const SimulatedRun& run, const std::vector<std::size_t>& p_frames,
                                  const std::vector<std::size_t>& n_frames) {
    const auto keep_only = [&](const fs::path& files) {
        for (const auto& [name, indices] : {std::pair{"p", &p_frames}, std::pair{"n", &n_frames}}) {
            const fs::path all = files / (std::string(name) + ".h5");
            const fs::path part = files / (std::string(name) + "-part.h5");
            if (!testing::copy_frames(all.string(), "/entry/data/data", part.string(), *indices)) {
                ADD_FAILURE() << "cannot copy frames of " << all;
                return false;
            }
            fs::rename(part, all);
        }
        return true;
    };
    const auto reference = testing::run_offline_analysis(ANISOFLOW_CLI, testing::scratch_dir(),
                                                         run.frame_options(), keep_only);
    EXPECT_EQ(reference.analyzed.exit_code, 0) << testing::describe(reference.analyzed);
    std::ifstream in(reference.summary_json);
    return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

// "" when the live result equals the offline one, else what differs.
std::string compare_with_offline(const stream::v1::AnalysisResult& live,
                                 const nlohmann::json& offline) {
    if (!offline.is_object()) {
        return "no offline SUMMARY.json";
    }
    std::string differences;
    const std::map<std::string, double> values = {
        {"alpha", live.alpha()},
        {"alpha_stderr", live.alpha_stderr()},
        {"alpha_full_range", live.alpha_full_range()},
        {"eps_aff", live.eps_aff()},
        {"eps_aff_stderr", live.eps_aff_stderr()},
        {"corr_stretching", live.corr_stretching()},
        {"s2_chi2", live.s2_chi2()},
        {"r_c_angstrom", live.has_r_c_angstrom() ? live.r_c_angstrom() : std::nan("")}};
    for (const auto& [key, a] : values) {
        const nlohmann::json& b_json = offline.value(key, nlohmann::json());
        if (b_json.is_null()) {
            if (!std::isnan(a)) {
                differences += fmt::format(" {}: live {} offline null;", key, a);
            }
            continue;
        }
        const double b = b_json.get<double>();
        if (!(std::abs(a - b) <=
              kSummationOrderRelativeTolerance * std::max(std::abs(a), std::abs(b)))) {
            differences += fmt::format(" {}: live {} offline {};", key, a, b);
        }
    }
    if (offline.value("n_frames_p", 0U) != live.n_frames_p() ||
        offline.value("n_frames_n", 0U) != live.n_frames_n()) {
        differences += " frame counts differ;";
    }
    return differences;
}

// ---------------------------------------------------------------------------------------------
// One round.

// kTerm: SIGTERM, an operator's restart (a rolling update), then a start as after a kill.
enum class Fault { kKill, kTerm, kStall, kSlowDisk, kFullDisk };

// The slow disk: archive's writes into the run directory go at this rate. The run's cakes alone
// (1000 x 72 cells, three float64 arrays: 1.7 MB each) then take ~9 s to write, three times the
// stream's length, so archive falls behind and holds analyze back for most of the round.
constexpr double kSlowDiskBytesPerS = 4e6;

// The full disk: archive runs in its own user and mount namespace (unshare, no root needed where
// the kernel allows unprivileged user namespaces) with a tmpfs of this size over the run
// directory; the round fills it up to half the reserve with a ballast file, until ingest holds
// its source back, and then deletes it. The run's file takes ~210 MB (1.7 MB of cakes per data
// frame).
constexpr std::uint64_t kFullDiskTmpfsBytes = 384ULL << 20U;
constexpr std::uint64_t kFullDiskReserveBytes = 32ULL << 20U;

// The run directory as archive sees it, in its own mount namespace (the full-disk round's tmpfs).
fs::path archive_view(FaultChain& chain) {
    return fs::path("/proc") / std::to_string(chain.child(Service::kArchive).pid()) / "root" /
           fs::absolute(chain.runs_dir()).relative_path();
}

// Fills the file system of `ballast`'s directory with that one file until `leave_bytes` are
// free (fatal failure when it cannot).
void fill_disk(const fs::path& ballast, std::uint64_t leave_bytes) {
    const auto free_bytes = runtime::free_disk_bytes(ballast.parent_path());
    ASSERT_TRUE(free_bytes.has_value()) << free_bytes.error().message;
    ASSERT_GT(*free_bytes, leave_bytes) << "the disk is full already";
    const int fd = ::open(ballast.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0) << ballast << ": " << std::generic_category().message(errno);
    const int allocated = ::posix_fallocate(fd, 0, static_cast<off_t>(*free_bytes - leave_bytes));
    ::close(fd);
    ASSERT_EQ(allocated, 0) << ballast << ": " << std::generic_category().message(allocated);
}

// Whether this machine lets an unprivileged process mount a tmpfs in a namespace of its own.
bool can_mount_tmpfs() {
    static const bool can = [] {
        // NOLINTNEXTLINE(concurrency-mt-unsafe,cert-env33-c): before the round's threads start
        return std::system(
                   "unshare -rm sh -c 'mount -t tmpfs -o size=1m none /mnt' "
                   ">/dev/null 2>&1") == 0;
    }();
    return can;
}

struct RoundPlan {
    std::string name;
    Fault fault = Fault::kKill;
    Service victim = Service::kReduce0;
};

// A stall round bounds every queue in front of the stalled service to this many frames:
// ingest's source queue and socket, the raw feed (both ends), the frames awaiting analyze's
// receipt. Ingest's growth must stay within those plus the workers' credits (2 x 2) and the
// frames waiting for credit (kStallSlackBytes on top for allocator and ZeroMQ noise).
constexpr std::size_t kStallQueueFrames = 4;
constexpr std::size_t kStallBudgetFrames = 6 * kStallQueueFrames + 4;
// The longest a stall lasts while waiting for ingest to hold its source back.
constexpr auto kStallLimit = stretched(15s);
constexpr std::uint64_t kStallSlackBytes = 16U << 20U;

// gtest names the round, not its bytes (gtest looks this name up).
// NOLINTNEXTLINE(readability-identifier-naming)
void PrintTo(const RoundPlan& plan, std::ostream* out) { *out << plan.name; }

// Reads analyze's results PUB on its own thread for the whole round (a PUB drops what a slow
// subscriber has no room for, the final result included) and keeps the final result of
// `run_id`. The socket is used by that thread only.
class FinalResultWatch {
  public:
    FinalResultWatch(zmq::socket_t socket, std::string run_id)
        : socket_(std::move(socket)), run_id_(std::move(run_id)), thread_([this] { watch(); }) {}
    ~FinalResultWatch() {
        done_ = true;
        thread_.join();
    }
    FinalResultWatch(const FinalResultWatch&) = delete;
    FinalResultWatch& operator=(const FinalResultWatch&) = delete;
    FinalResultWatch(FinalResultWatch&&) = delete;
    FinalResultWatch& operator=(FinalResultWatch&&) = delete;

    // The final result once it came, waiting up to `patience` for it.
    std::optional<stream::v1::AnalysisResult> wait(std::chrono::milliseconds patience) {
        std::unique_lock lock(mutex_);
        arrived_.wait_for(lock, patience, [&] { return final_.has_value(); });
        return final_;
    }

  private:
    void watch() {
        while (!done_) {
            auto received = transport::receive(socket_, 100ms);
            if (!received || !*received) {
                continue;
            }
            auto decoded = transport::decode(std::move(**received));
            if (!decoded) {
                continue;
            }
            if (auto* result = std::get_if<transport::ResultMessage>(&*decoded);
                result != nullptr && result->header.run_id() == run_id_ &&
                result->header.is_final()) {
                const std::lock_guard lock(mutex_);
                final_ = result->header;
                arrived_.notify_all();
            }
        }
    }

    zmq::socket_t socket_;
    std::string run_id_;
    std::mutex mutex_;
    std::condition_variable arrived_;
    std::optional<stream::v1::AnalysisResult> final_;
    std::atomic<bool> done_{false};
    std::thread thread_;  // last: starts once the members above exist
};

void run_round(const RoundPlan& plan) {
    const std::uint64_t seed = suite_seed() ^ std::hash<std::string>{}(plan.name);
    std::mt19937_64 random(seed);
    SimulatedRun run;
    run.run_id = "fault-" + plan.name;
    // A stalled archive or analyze, or a full disk, must turn into backpressure on the source.
    const bool holds_back = plan.fault == Fault::kStall || plan.fault == Fault::kFullDisk;
    // Archive killed or stopped mid-run, then started again: with receipts on both feeds the
    // run file must end whole.
    const bool restarts_archive = (plan.fault == Fault::kKill || plan.fault == Fault::kTerm) &&
                                  plan.victim == Service::kArchive;
    if (holds_back) {
        // Longer and larger frames: a stall must hold the source back while it still sends,
        // and a missing bound would show in ingest's memory.
        run.rows = 256;
        run.cols = 256;
        run.frames_per_orientation = 60;
        run.fps = 20.0;
    }
    RoundFigures f;
    f.round = plan.name;
    f.seed = seed;
    f.frames_sent = run.frame_count();
    f.cakes_expected = run.data_sequences().size();
    SCOPED_TRACE(::testing::Message() << "round " << plan.name << " seed " << seed
                                      << " (ANISOFLOW_FAULT_SEED=" << suite_seed() << ")");

    if (plan.fault == Fault::kFullDisk && !can_mount_tmpfs()) {
        GTEST_SKIP() << "this machine does not let an unprivileged process mount a tmpfs in a "
                        "namespace of its own (unshare -rm): no full disk to give archive";
    }
    FaultChain chain(plan.name);
    if (holds_back) {
        const std::string frames = std::to_string(kStallQueueFrames);
        chain.set(Service::kIngest, "queue_capacity_frames", frames);
        chain.set(Service::kIngest, "source.receive_hwm_messages", frames);
        chain.set(Service::kIngest, "max_unconfirmed_frames", frames);
        chain.set(Service::kIngest, "endpoints.raw_out.send_hwm_messages", frames);
        chain.set(Service::kArchive, "endpoints.raw_in.receive_hwm_messages", frames);
        // What ingest keeps for archive's receipts is a queue in front of archive too.
        chain.set(Service::kIngest, "max_unreceipted_raw_frames", frames);
    }
    if (plan.fault == Fault::kFullDisk) {
        // $0 is the run directory, "$@" the archive's command line.
        chain.set_prefix(Service::kArchive,
                         {"/usr/bin/unshare", "-rm", "sh", "-c",
                          fmt::format("mount -t tmpfs -o size={} anisoflow-full-disk \"$0\" && "
                                      "exec \"$@\"",
                                      kFullDiskTmpfsBytes),
                          fs::absolute(chain.runs_dir()).string()});
        chain.set(Service::kArchive, "min_free_disk_bytes", std::to_string(kFullDiskReserveBytes));
    }
    if (plan.fault == Fault::kSlowDisk) {
        chain.set_env(Service::kArchive, "LD_PRELOAD", ANISOFLOW_SLOW_WRITE);
        chain.set_env(Service::kArchive, "ANISOFLOW_SLOW_WRITE_DIR", chain.runs_dir().string());
        chain.set_env(Service::kArchive, "ANISOFLOW_SLOW_WRITE_BYTES_PER_S",
                      fmt::format("{}", kSlowDiskBytesPerS));
        // Under AddressSanitizer the preloaded library comes before its runtime: allowed here.
        // NOLINTNEXTLINE(concurrency-mt-unsafe): read before any thread of the round starts
        const char* asan = std::getenv("ASAN_OPTIONS");
        chain.set_env(Service::kArchive, "ASAN_OPTIONS",
                      std::string(asan != nullptr ? asan : "") +
                          (asan != nullptr && *asan != '\0' ? ":" : "") +
                          "verify_asan_link_order=0");
    }
    ASSERT_TRUE(chain.start(kPatience));
    zmq::context_t context;
    auto results = transport::open_socket(context, zmq::socket_type::sub,
                                          ">" + chain.ipc("results"), transport::SocketOptions{});
    ASSERT_TRUE(results.has_value()) << results.error().message;
    FinalResultWatch watch(std::move(*results), run.run_id);
    std::this_thread::sleep_for(300ms);  // the SUB is connected before the first result
    chain.start_simulator(run);

    // The moment: while the stream goes on (a slow disk is slow from the start).
    // A killed service is back before the stream ends (kill in the first 60 %, down at most
    // 30 % of the stream): a service restarted after its run ended is a known gap
    // (docs/faults.md, "What does not hold yet").
    std::uniform_real_distribution<double> when(0.2 * run.duration_s(),
                                                (holds_back ? 0.4 : 0.6) * run.duration_s());
    const double fault_at_s = plan.fault == Fault::kSlowDisk ? 0.0 : when(random);
    std::this_thread::sleep_for(std::chrono::duration<double>(fault_at_s));
    if (plan.fault == Fault::kKill || plan.fault == Fault::kTerm) {
        std::uniform_real_distribution<double> down(0.1, 0.3 * run.duration_s());
        const double down_s = down(random);
        if (plan.fault == Fault::kKill) {
            f.moment = fmt::format("kill {:.2f}s, down {:.2f}s", fault_at_s, down_s);
            chain.kill(plan.victim);
        } else {
            f.moment = fmt::format("term {:.2f}s, down {:.2f}s", fault_at_s, down_s);
            EXPECT_EQ(chain.stop(plan.victim), 0) << "did not exit 0 on SIGTERM\n" << chain.logs();
        }
        std::this_thread::sleep_for(std::chrono::duration<double>(down_s));
        const auto restarted = Clock::now();
        chain.start(plan.victim);
        f.rejoin_s = chain.wait_rejoined(plan.victim, restarted, kPatience);
        EXPECT_TRUE(f.rejoin_s.has_value()) << "did not rejoin\n" << chain.logs();
        if (f.rejoin_s) {
            EXPECT_LT(*f.rejoin_s, kRejoinLimitS) << chain.logs();
        }
    } else if (plan.fault == Fault::kSlowDisk) {
        f.moment = fmt::format("archive writes at {:.0f} MB/s", kSlowDiskBytesPerS / 1e6);
    } else {
        // Stopped, or its disk full, until ingest holds its source back (its received count
        // still for a second), then resumed or given room: the queues in front of the stalled
        // service are bounded, and a stall or a full disk turns into backpressure, never into
        // growth or loss.
        const pid_t ingest_pid = chain.child(Service::kIngest).pid();
        const std::uint64_t rss_before = testing::resident_bytes(ingest_pid);
        std::uint64_t rss_peak = rss_before;
        const auto stopped = Clock::now();
        fs::path ballast;
        if (plan.fault == Fault::kStall) {
            chain.child(plan.victim).signal(SIGSTOP);
        } else {
            ballast = archive_view(chain) / "ballast";
            ASSERT_NO_FATAL_FAILURE(fill_disk(ballast, kFullDiskReserveBytes / 2));
        }
        double received = -1.0;
        auto still_since = Clock::now();
        std::string held;
        while (Clock::now() - stopped < kStallLimit && Clock::now() - still_since < stretched(1s)) {
            std::this_thread::sleep_for(100ms);
            rss_peak = std::max(rss_peak, testing::resident_bytes(ingest_pid));
            held = chain.metrics(Service::kIngest);
            const double now_received =
                testing::metric_value(held, "anisoflow_ingest_frames_received_total");
            if (now_received != received) {
                received = now_received;
                still_since = Clock::now();
            }
        }
        const double stall_s = std::chrono::duration<double>(Clock::now() - stopped).count();
        if (plan.fault == Fault::kStall) {
            chain.child(plan.victim).signal(SIGCONT);
            f.moment = fmt::format("stop {:.2f}s for {:.2f}s", fault_at_s, stall_s);
        } else {
            const std::string archive_metrics = chain.metrics(Service::kArchive);
            EXPECT_EQ(testing::metric_value(archive_metrics, "anisoflow_archive_disk_full"), 1.0)
                << "archive does not say its disk is full\n"
                << archive_metrics;
            std::error_code removed;
            fs::remove(ballast, removed);
            EXPECT_FALSE(removed) << ballast << ": " << removed.message();
            f.moment = fmt::format("disk full {:.2f}s for {:.2f}s", fault_at_s, stall_s);
        }
        const std::string fault = plan.fault == Fault::kStall
                                      ? service_name(plan.victim) + " stalled"
                                      : std::string("archive's disk was full");
        EXPECT_LT(Clock::now() - stopped, kStallLimit)
            << "ingest kept taking frames while " << fault << "\n"
            << held;
        EXPECT_LT(received, static_cast<double>(run.frame_count()))
            << "the stream ended before the stall held it back";
        // The depth counts the queue and the one event the dispatcher holds back.
        EXPECT_LE(testing::metric_value(held, "anisoflow_ingest_queue_depth_frames"),
                  static_cast<double>(kStallQueueFrames + 1))
            << held;
        const std::uint64_t frame_bytes = run.rows * run.cols * 2;
        const std::uint64_t budget = kStallBudgetFrames * frame_bytes + kStallSlackBytes;
        if (kResidentMemoryMeaningful) {
            EXPECT_LE(rss_peak - rss_before, budget)
                << "ingest grew beyond its queues while " << fault;
        }
        f.moment += fmt::format(", ingest +{:.1f} MB",
                                static_cast<double>(rss_peak - rss_before) / (1U << 20U));
    }

    const auto simulated = chain.simulator().wait_for(kPatience);
    EXPECT_TRUE(simulated.has_value()) << chain.logs();
    const auto stream_ended = Clock::now();
    EXPECT_TRUE(testing::wait_for_text(chain.log("archive"), "run file closed run=" + run.run_id,
                                       kPatience))
        << chain.logs();
    if (plan.fault == Fault::kSlowDisk) {
        // The disk was slow indeed: archive finished well after the stream.
        const double behind_s = std::chrono::duration<double>(Clock::now() - stream_ended).count();
        f.moment += fmt::format(", done {:.1f}s after the stream", behind_s);
        EXPECT_GT(behind_s, 2.0) << "the slow disk did not slow archive down\n" << chain.logs();
    }
    // Archive closes the run after analyze's RunEnd, which follows the final result: the SUB
    // holds it by now.
    const auto final_result = watch.wait(stretched(5s));
    const bool sums_lost = plan.fault == Fault::kKill && plan.victim == Service::kAnalyze;
    if (sums_lost && !final_result) {
        // A killed analyze may take every P frame with it (its sums live in memory:
        // docs/faults.md): analyze then has one orientation only and says so instead of
        // publishing a result.
        EXPECT_NE(testing::read_text(chain.log("analyze")).find("no final result, too few frames"),
                  std::string::npos)
            << "no final result and no reason\n"
            << chain.logs();
    } else {
        EXPECT_TRUE(final_result.has_value()) << "no final result\n" << chain.logs();
    }
    if (plan.fault == Fault::kKill && plan.victim == Service::kIngest) {
        // The restarted ingest resumed the run (state_dir): it refuses none of its frames.
        const std::string metrics = chain.metrics(Service::kIngest);
        const double refused = testing::metric_value(
            metrics, "anisoflow_ingest_frames_rejected_total{reason=\"no_run\"}");
        f.refused = std::isnan(refused) ? 0 : static_cast<std::size_t>(refused);
        EXPECT_EQ(f.refused, 0U) << "the restarted ingest refused frames of the run\n"
                                 << chain.logs();
        EXPECT_EQ(testing::metric_value(metrics, "anisoflow_ingest_runs_resumed_total"), 1.0)
            << metrics;
    }
    if (restarts_archive) {
        // How much of what the killed or stopped archive lacked came again (docs/protocol.md,
        // "Archive receipts"); 0 when nothing was in flight at the fault.
        const double resent = testing::metric_value(chain.metrics(Service::kAnalyze),
                                                    "anisoflow_analyze_archive_resent_total") +
                              testing::metric_value(chain.metrics(Service::kIngest),
                                                    "anisoflow_ingest_raw_resent_total");
        EXPECT_FALSE(std::isnan(resent)) << "no resent counters";
        f.moment += fmt::format(", {:.0f} sent again", resent);
    }
    const fs::path run_file = chain.runs_dir() / (run.run_id + ".nxs");
    if (plan.fault == Fault::kFullDisk) {
        // The file lives in archive's tmpfs, gone with archive: copied out while it runs.
        std::error_code copied;
        fs::copy_file(archive_view(chain) / run_file.filename(), run_file,
                      fs::copy_options::overwrite_existing, copied);
        EXPECT_FALSE(copied) << "the run file cannot be copied out of archive's tmpfs: "
                             << copied.message();
    }
    for (const auto& [name, code] : chain.stop_all()) {
        EXPECT_EQ(code, 0) << name << " did not exit 0 on SIGTERM\n" << chain.logs();
    }

    const RunFile file = read_run_file(run_file);
    EXPECT_TRUE(file.opened) << "the run file does not open\n" << chain.logs();
    f.raw_archived = file.raw.size();
    f.cakes_archived = std::set<std::uint64_t>(file.cakes.begin(), file.cakes.end()).size();
    EXPECT_EQ(file.cakes.size(), f.cakes_archived) << "a cake archived twice";

    // Missing frames must be named: analyze's unseen list or the run file's missing_cakes for
    // cakes, the run file's missing_sequences for raw frames (and the cake of a frame named
    // there: archive does not know the kind of a frame it never got).
    const std::set<std::uint64_t> unseen =
        sequences_named(testing::read_text(chain.log("analyze")), "unseen_sequences");
    const std::set<std::uint64_t> cakes_missing = sequences_named(file.end_detail, "missing_cakes");
    const std::set<std::uint64_t> raw_missing =
        sequences_named(file.end_detail, "missing_sequences");
    std::vector<std::uint64_t> absent;  // in the run file nowhere, named nowhere
    for (std::uint64_t s = 0; s < run.frame_count(); ++s) {
        const bool data = s >= run.darks + 1;
        const bool raw_ok = file.raw.contains(s) || raw_missing.contains(s);
        const bool cake_named =
            unseen.contains(s) || cakes_missing.contains(s) || raw_missing.contains(s);
        const bool cake_ok = !data || file.cakes.contains(s) || cake_named;
        f.reported_missing += (!file.raw.contains(s) && raw_missing.contains(s) ? 1 : 0) +
                              (data && !file.cakes.contains(s) && cake_named ? 1 : 0);
        if (!raw_ok || !cake_ok) {
            absent.push_back(s);
        }
    }
    if (plan.fault == Fault::kKill && plan.victim == Service::kIngest) {
        // The restarted ingest resumed the run and ended it as the source did; what the killed
        // one had taken and not sent is named by archive from RunEnd.sequences_end.
        EXPECT_EQ(file.state, "completed") << file.end_detail << "\n" << chain.logs();
        EXPECT_NE(file.end_detail.find("resumed after 1 restart of ingest"), std::string::npos)
            << file.end_detail;
        for (std::uint64_t s = 0; s < run.frame_count(); ++s) {
            f.died_with_ingest += !file.raw.contains(s) && raw_missing.contains(s) ? 1 : 0;
        }
    }
    if (restarts_archive) {
        // Archive receipts (docs/protocol.md): what the killed archive had taken, or what sat in
        // its sockets, was kept by analyze and ingest and sent again to the restarted one. A
        // stopped archive closed the file "interrupted" and the restarted one went on with it
        // (docs/archive.md, "Stopping mid-run").
        if (plan.fault == Fault::kTerm) {
            EXPECT_NE(testing::read_text(chain.log("archive"))
                          .find("run file interrupted run=" + run.run_id),
                      std::string::npos)
                << chain.logs();
        }
        EXPECT_EQ(file.raw.size(), run.frame_count()) << file.end_detail << "\n" << chain.logs();
        EXPECT_EQ(f.cakes_archived, 2 * run.frames_per_orientation) << file.end_detail << "\n"
                                                                    << chain.logs();
        EXPECT_EQ(file.state, "completed") << file.end_detail;
    }
    f.silently_absent = absent.size();
    EXPECT_EQ(f.silently_absent, 0U) << "frames absent from the run file and named nowhere: "
                                     << fmt::format("{}", fmt::join(absent, ",")) << "\n"
                                     << chain.logs();

    if (final_result) {
        // The result holds the data frames analyze does not name unseen: the offline analysis
        // of exactly those must give the same numbers, whole run or not.
        std::vector<std::size_t> p_frames;
        std::vector<std::size_t> n_frames;
        const std::size_t per = run.frames_per_orientation;
        for (std::size_t i = 0; i < per; ++i) {
            if (!unseen.contains(run.darks + 1 + i)) {
                p_frames.push_back(i);
            }
            if (!unseen.contains(run.darks + 1 + per + i)) {
                n_frames.push_back(i);
            }
        }
        const bool whole = p_frames.size() == per && n_frames.size() == per;
        const std::string differences = compare_with_offline(
            *final_result,
            whole ? offline_summary(run) : offline_summary_of(run, p_frames, n_frames));
        EXPECT_EQ(differences, "") << chain.logs();
        f.result = whole ? "= offline"
                         : fmt::format("P {} N {} = offline", p_frames.size(), n_frames.size());
        if (!differences.empty()) {
            f.result = whole ? "differs"
                             : fmt::format("P {} N {} differs", p_frames.size(), n_frames.size());
        }
    } else {
        f.result = "none";
    }
    figures().push_back(f);
}

class FaultRound : public ::testing::TestWithParam<RoundPlan> {};

TEST_P(FaultRound, NoFrameSilentlyLostAndTheServiceRejoins) { run_round(GetParam()); }

std::string round_name(const ::testing::TestParamInfo<RoundPlan>& round) {
    std::string name = round.param.name;
    std::replace(name.begin(), name.end(), '-', '_');
    return name;
}

INSTANTIATE_TEST_SUITE_P(
    Kill, FaultRound,
    ::testing::Values(RoundPlan{"kill-reduce", Fault::kKill, Service::kReduce0},
                      RoundPlan{"kill-gateway", Fault::kKill, Service::kGateway},
                      RoundPlan{"kill-analyze", Fault::kKill, Service::kAnalyze},
                      RoundPlan{"kill-ingest", Fault::kKill, Service::kIngest},
                      RoundPlan{"kill-archive", Fault::kKill, Service::kArchive},
                      RoundPlan{"term-archive", Fault::kTerm, Service::kArchive}),
    round_name);

INSTANTIATE_TEST_SUITE_P(
    Disk, FaultRound,
    ::testing::Values(RoundPlan{"slow-disk", Fault::kSlowDisk, Service::kArchive},
                      RoundPlan{"full-disk", Fault::kFullDisk, Service::kArchive}),
    round_name);

INSTANTIATE_TEST_SUITE_P(
    Stall, FaultRound,
    ::testing::Values(RoundPlan{"stall-archive", Fault::kStall, Service::kArchive},
                      RoundPlan{"stall-analyze", Fault::kStall, Service::kAnalyze}),
    round_name);

}  // namespace
}  // namespace anisoflow::faults
