// The real anisoflow-archive binary as a child process, fed by the test over real ZeroMQ sockets
// (the test binds analyze's archive feed and ingest's raw frame feed, as PUSHes) and read back from
// its run files (docs/archive.md, "The end detail" and "Reopening after a crash"). Deterministic:
// which cakes never come, and when archive is killed, are the test's choice, not a race's (the
// fault suite, tests/faults, reaches the same code at random moments).
//  - the data frames whose raw frame came but whose cake did not are named in missing_cakes, and
//    counted, and nothing else is named; a run where every cake came names none;
//  - an archive SIGKILLed mid-run and started again with the same command line reopens the run
//    file at the run's next message and completes it with every frame and cake once; raw frames
//    sent while it was down are stored or named in missing_sequences;
//  - a completed run file is never reopened by a late message of its run, by the archive that
//    closed it (no_open_run) or by a restarted one (reopen), and stays as it was;
//  - archive's receipts (docs/protocol.md, "Archive receipts") list what the file holds, from the
//    file itself after a restart, with a new session; what is sent again is stored once; a closed
//    run is receipted as finished, also by a restarted archive that never had it open.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <signal.h>  // NOLINT(modernize-deprecated-headers): SIGSTOP is POSIX
#include <unistd.h>
#include <zmq.hpp>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/testing/child_process.hpp"
#include "anisoflow/testing/cli_runner.hpp"
#include "anisoflow/testing/hdf5_values.hpp"
#include "anisoflow/testing/test_paths.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/payload.hpp"
#include "anisoflow/transport/socket.hpp"

#include "run_messages.hpp"

namespace anisoflow {
namespace {

namespace pb = ::anisoflow::stream::v1;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::read_fixed_string;
using testing::read_u64;

// Only reached when something is broken; a passing test takes a second or two. Longer under a
// sanitizer, where the archive runs several times slower (as tests/faults stretches its limits).
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr auto kPatience = 120s;
#else
constexpr auto kPatience = 30s;
#endif

constexpr std::uint32_t kSide = 64;  // the test detector: 64 x 64 uint16 pixels
constexpr std::uint64_t kDarks = testing::kSmallRunDarks;
constexpr std::uint64_t kFirstData = testing::kSmallRunFirstData;

// ---- the run's messages -------------------------------------------------------------------------

pb::RunStart run_start(const std::string& run_id) {
    return testing::small_run_start(run_id, kSide);
}

pb::FrameKind kind_of(std::uint64_t sequence) { return testing::small_run_kind(sequence); }

pb::Orientation orientation_of(std::uint64_t sequence) {
    return testing::small_run_orientation(sequence);
}

pb::FrameHeader frame_header(const std::string& run_id, std::uint64_t sequence) {
    return testing::small_run_header(run_id, sequence, kSide);
}

// A RAW uint16 frame of ingest's raw feed; its pixels carry its sequence.
transport::Multipart raw_frame(const std::string& run_id, std::uint64_t sequence) {
    return testing::small_run_frame(run_id, sequence, kSide);
}

// The cake of a data frame as analyze forwards it: reduce's sums, on the run's cake grid.
transport::Multipart cake(const pb::RunStart& start, std::uint64_t sequence) {
    return testing::small_run_cake(start, sequence, orientation_of(sequence),
                                   1.0 + static_cast<double>(sequence));
}

// The RunEnd of a run of frames 0 .. frames-1 (ingest sends the same on both feeds, by way of
// analyze on the archive feed).
pb::RunEnd run_end(const std::string& run_id, std::uint64_t frames) {
    pb::RunEnd end;
    end.set_run_id(run_id);
    end.set_reason(pb::RUN_END_REASON_COMPLETED);
    end.set_ended_unix_ns(1'700'000'000'000'000'000);
    for (std::uint64_t s = 0; s < frames; ++s) {
        transport::count_frame(*end.mutable_frames_sent(), frame_header(run_id, s));
    }
    return end;
}

template <typename Control>
transport::Multipart control(const Control& message) {
    auto parts = transport::encode_control(message);
    EXPECT_TRUE(parts) << parts.error().message;
    return parts ? std::move(*parts) : transport::Multipart{};
}

// ---- the run file -------------------------------------------------------------------------------

struct RunFile {
    bool opened = false;
    std::string state;
    std::string end_detail;
    std::multiset<std::uint64_t> raw;    // /entry/data/sequence (a duplicate would show)
    std::multiset<std::uint64_t> cakes;  // /entry/reduced/sequence
    std::vector<std::uint64_t> frames_archived;
};

// Read with SWMR read access, so that a file archive is still writing can be read too.
RunFile read_run_file(const std::filesystem::path& path) {
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
    for (const std::uint64_t s : read_u64(file, "/entry/reduced/sequence")) {
        run.cakes.insert(s);
    }
    run.frames_archived = read_u64(file, "/entry/frames_archived");
    H5Fclose(file);
    return run;
}

// The sequences a "key=[a,b,c]" list of the end detail names; nullopt when there is no such list.
std::optional<std::multiset<std::uint64_t>> named(const std::string& detail,
                                                  const std::string& key) {
    const std::regex list(key + R"(=\[([0-9,]*)\])");
    std::smatch match;
    if (!std::regex_search(detail, match, list)) {
        return std::nullopt;
    }
    std::multiset<std::uint64_t> sequences;
    const std::string items = match[1];
    std::size_t at = 0;
    while (at < items.size()) {
        const std::size_t comma = items.find(',', at);
        sequences.insert(std::stoull(items.substr(at, comma - at)));
        at = comma == std::string::npos ? items.size() : comma + 1;
    }
    return sequences;
}

std::multiset<std::uint64_t> range(std::uint64_t first, std::uint64_t end) {
    std::multiset<std::uint64_t> sequences;
    for (std::uint64_t s = first; s < end; ++s) {
        sequences.insert(s);
    }
    return sequences;
}

std::string file_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// ---- anisoflow-archive and its two feeds ------------------------------------------------------

// The test stands in for analyze (archive feed) and ingest (raw frame feed): both PUSHes bind, as
// theirs do, and archive connects to them. Archive is started, SIGKILLed and started again with
// the same command line; its log continues in one file.
class ArchiveUnderTest {
  public:
    ArchiveUnderTest()
        : dir_(testing::scratch_dir()),
          // ipc paths are limited to ~100 characters: the sockets live in a short directory.
          sockets_(std::filesystem::temp_directory_path() /
                   ("afa-" + std::to_string(::getpid()) + "-" +
                    ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
        std::filesystem::create_directories(sockets_);
        const std::string archive_in = "ipc://" + (sockets_ / "archive").string();
        const std::string raw_in = "ipc://" + (sockets_ / "raw").string();
        auto feed = transport::open_socket(context_, zmq::socket_type::push, "@" + archive_in);
        auto raw = transport::open_socket(context_, zmq::socket_type::push, "@" + raw_in);
        EXPECT_TRUE(feed && raw);
        if (feed && raw) {
            feed_ = std::move(*feed);
            raw_ = std::move(*raw);
        }
        const auto set = [&](const std::string& key, const std::string& value) {
            args_.push_back("--set");
            args_.push_back(key + "=" + value);
        };
        set("endpoints.archive_in.address", ">" + archive_in);
        set("endpoints.raw_in.address", ">" + raw_in);
        set("archive_dir", runs_dir().string());
        set("raw_drain_timeout_ms", "60000");  // both RunEnds always come: never the timeout
        set("min_free_disk_bytes", "0");       // a full scratch disk is not this test's subject
        set("metrics.bind_address", "127.0.0.1:0");
    }
    ~ArchiveUnderTest() {
        process_.reset();
        std::error_code ignored;
        std::filesystem::remove_all(sockets_, ignored);
    }
    ArchiveUnderTest(const ArchiveUnderTest&) = delete;
    ArchiveUnderTest& operator=(const ArchiveUnderTest&) = delete;
    ArchiveUnderTest(ArchiveUnderTest&&) = delete;
    ArchiveUnderTest& operator=(ArchiveUnderTest&&) = delete;

    /// One more `--set key=value` for the next start().
    void set_option(const std::string& key, const std::string& value) {
        args_.push_back("--set");
        args_.push_back(key + "=" + value);
    }

    /// Starts (or restarts) archive and waits for its ready line and its metrics port.
    bool start() {
        const std::size_t from = log_size();
        process_ = std::make_unique<testing::ChildProcess>(ANISOFLOW_ARCHIVE, args_, log_path());
        if (!testing::wait_for_text(log_path(), ": ready ", kPatience, from)) {
            ADD_FAILURE() << "archive did not come up\n" << process_->describe();
            return false;
        }
        port_ = testing::logged_metrics_port(*process_, kPatience, from);
        EXPECT_TRUE(port_) << process_->describe();
        return port_.has_value();
    }

    void kill() { process_->kill_hard(); }
    /// SIGSTOP, then waits until every thread of archive is stopped (state T in /proc).
    bool pause() {
        process_->signal(SIGSTOP);
        const std::filesystem::path tasks =
            std::filesystem::path("/proc") / std::to_string(process_->pid()) / "task";
        const auto deadline = Clock::now() + kPatience;
        while (Clock::now() < deadline) {
            bool stopped = true;
            std::error_code error;
            for (const auto& task : std::filesystem::directory_iterator(tasks, error)) {
                const std::string stat = testing::read_text(task.path() / "stat");
                const auto state = stat.rfind(')');  // "pid (comm) S ..."
                stopped = stopped && state != std::string::npos && state + 2 < stat.size() &&
                          stat[state + 2] == 'T';
            }
            if (stopped && !error) {
                return true;
            }
            std::this_thread::sleep_for(1ms);
        }
        return false;
    }
    /// SIGTERM; the exit code.
    int stop() { return process_->terminate(); }

    /// Switches archive's receipts on for the next start() (receipt_interval_ms 20) and
    /// subscribes to them, as analyze and ingest do.
    void enable_receipts() {
        const std::string address = "ipc://" + (sockets_ / "receipts").string();
        set_option("endpoints.receipts_out.address", "@" + address);
        set_option("receipt_interval_ms", "20");
        auto receipts = transport::open_socket(context_, zmq::socket_type::sub, ">" + address);
        ASSERT_TRUE(receipts) << receipts.error().message;
        receipts_ = std::move(*receipts);
    }
    /// The first receipts (in order of arrival) for which `accept` holds; nullopt after kPatience.
    template <typename Accept>
    std::optional<pb::ArchiveReceipts> wait_receipts(Accept&& accept) {
        const auto deadline = Clock::now() + kPatience;
        while (Clock::now() < deadline) {
            auto received = transport::receive(receipts_, 100ms);
            if (!received || !*received) {
                continue;
            }
            auto decoded = transport::decode(std::move(**received));
            EXPECT_TRUE(decoded) << "archive sent what decode() refuses";
            const auto* message =
                decoded ? std::get_if<transport::ArchiveReceiptsMessage>(&*decoded) : nullptr;
            if (message != nullptr && accept(message->receipts)) {
                return message->receipts;
            }
        }
        return std::nullopt;
    }

    void send_feed(transport::Multipart parts) { send(feed_, std::move(parts)); }
    void send_raw(transport::Multipart parts) { send(raw_, std::move(parts)); }
    /// Offers a raw frame for at most `timeout`: whether the socket took it.
    bool offer_raw(transport::Multipart parts, std::chrono::milliseconds timeout) {
        auto sent = transport::send(raw_, parts, timeout);
        EXPECT_TRUE(sent) << sent.error().message;
        return sent && *sent;
    }

    /// One sample of archive's metrics (NaN when absent or unreachable).
    double metric(const std::string& series) const {
        return testing::metric_value(testing::http_get(*port_, "/metrics"), series);
    }
    /// Waits until `series` reaches `expected`; the value seen last, so that a test can assert
    /// it is exactly `expected`.
    double wait_metric(const std::string& series, double expected) const {
        const auto deadline = Clock::now() + kPatience;
        double value = metric(series);
        while (!(value >= expected) && Clock::now() < deadline) {
            std::this_thread::sleep_for(10ms);  // a poll interval, not a synchronisation
            value = metric(series);
        }
        return value;
    }

    [[nodiscard]] std::filesystem::path runs_dir() const { return dir_ / "runs"; }
    [[nodiscard]] std::filesystem::path run_path(const std::string& run_id) const {
        return runs_dir() / (run_id + ".nxs");  // a plain id is its own file name
    }
    [[nodiscard]] std::filesystem::path log_path() const { return dir_ / "archive.log"; }
    [[nodiscard]] std::string log() const { return testing::read_text(log_path()); }
    [[nodiscard]] std::size_t log_size() const {
        std::error_code error;
        const auto size = std::filesystem::file_size(log_path(), error);
        return error ? 0 : static_cast<std::size_t>(size);
    }

  private:
    static void send(zmq::socket_t& socket, transport::Multipart parts) {
        auto sent = transport::send(socket, parts, kPatience);
        ASSERT_TRUE(sent) << sent.error().message;
        ASSERT_TRUE(*sent) << "archive did not take the message";
    }

    std::filesystem::path dir_;
    std::filesystem::path sockets_;
    std::vector<std::string> args_;
    zmq::context_t context_;
    zmq::socket_t feed_;      // analyze's archive feed
    zmq::socket_t raw_;       // ingest's raw frame feed
    zmq::socket_t receipts_;  // archive's receipts, once enable_receipts()
    std::unique_ptr<testing::ChildProcess> process_;
    std::optional<std::uint16_t> port_;
};

constexpr const char* kClosed = "anisoflow_archive_runs_closed_total";
constexpr const char* kCakesMissing = "anisoflow_archive_cakes_missing_total";
constexpr const char* kRawWritten = "anisoflow_archive_raw_frames_written_total";
constexpr const char* kCakesWritten = "anisoflow_archive_reduced_frames_written_total";
constexpr const char* kReopened = "anisoflow_archive_runs_reopened_total";

std::string errors(const std::string& reason) {
    return "anisoflow_archive_errors_total{reason=\"" + reason + "\"}";
}

// The start of a run, stored: RunStart on both feeds, raw frames 0 .. raw_end-1 and the cakes
// of data frames kFirstData .. cake_end-1, then waits until archive has written them all (every
// append flushes before its metric counts it: an SWMR reader sees them all).
void store_run_start(ArchiveUnderTest& archive, const pb::RunStart& start, std::uint64_t raw_end,
                     std::uint64_t cake_end) {
    archive.send_raw(control(start));
    archive.send_feed(control(start));
    for (std::uint64_t s = 0; s < raw_end; ++s) {
        archive.send_raw(raw_frame(start.run_id(), s));
    }
    for (std::uint64_t s = kFirstData; s < cake_end; ++s) {
        archive.send_feed(cake(start, s));
    }
    ASSERT_EQ(archive.wait_metric(kRawWritten, static_cast<double>(raw_end)),
              static_cast<double>(raw_end))
        << archive.log();
    ASSERT_EQ(archive.wait_metric(kCakesWritten, static_cast<double>(cake_end - kFirstData)),
              static_cast<double>(cake_end - kFirstData))
        << archive.log();
}

// The RunEnd of a run of frames 0 .. frames-1, on both feeds.
void send_run_end(ArchiveUnderTest& archive, const std::string& run_id, std::uint64_t frames) {
    const pb::RunEnd end = run_end(run_id, frames);
    archive.send_feed(control(end));
    archive.send_raw(control(end));
}

// A whole run: RunStart on the raw feed first (ingest's: it creates the file), then analyze's;
// frames 0 .. frames-1 on the raw feed, the cakes of `with_cake` on the archive feed, both RunEnds.
void send_run(ArchiveUnderTest& archive, const pb::RunStart& start, std::uint64_t frames,
              const std::set<std::uint64_t>& with_cake) {
    archive.send_raw(control(start));
    archive.send_feed(control(start));
    for (std::uint64_t s = 0; s < frames; ++s) {
        archive.send_raw(raw_frame(start.run_id(), s));
    }
    for (const std::uint64_t s : with_cake) {
        archive.send_feed(cake(start, s));
    }
    send_run_end(archive, start.run_id(), frames);
}

// ---- 1. cakes that never came -----------------------------------------------------------------

TEST(ArchiveService, NamesTheDataFramesWhoseCakeNeverCameAndNothingElse) {
    ArchiveUnderTest archive;
    ASSERT_TRUE(archive.start());
    constexpr std::uint64_t kFrames = 13;  // 2 darks, a flat, data frames 3 .. 12
    const pb::RunStart start = run_start("cakes-missing");

    // Ingest's RunStart alone opens the file (the raw feed is read first, docs/protocol.md).
    archive.send_raw(control(start));
    ASSERT_TRUE(
        testing::wait_for_text(archive.log_path(), "run file created run=cakes-missing", kPatience))
        << archive.log();
    const std::set<std::uint64_t> with_cake = {3, 4, 6, 9, 12};
    archive.send_feed(control(start));  // analyze's: the file is open already, nothing happens
    for (std::uint64_t s = 0; s < kFrames; ++s) {
        archive.send_raw(raw_frame(start.run_id(), s));
    }
    for (const std::uint64_t s : with_cake) {
        archive.send_feed(cake(start, s));
    }
    send_run_end(archive, start.run_id(), kFrames);
    ASSERT_EQ(archive.wait_metric(kClosed, 1), 1) << archive.log();

    const std::multiset<std::uint64_t> without_cake = {5, 7, 8, 10, 11};
    EXPECT_EQ(archive.metric(kCakesMissing), static_cast<double>(without_cake.size()));
    EXPECT_EQ(archive.metric("anisoflow_archive_runs_opened_total"), 1);
    EXPECT_EQ(archive.metric(errors("create")), 0) << "analyze's RunStart created it again";
    EXPECT_EQ(archive.metric(errors("raw_incomplete")), 0);
    EXPECT_EQ(archive.metric(errors("no_open_run")), 0);
    const RunFile run = read_run_file(archive.run_path(start.run_id()));
    ASSERT_TRUE(run.opened) << archive.log();
    EXPECT_EQ(run.state, "completed");
    EXPECT_EQ(named(run.end_detail, "missing_cakes"), without_cake) << run.end_detail;
    EXPECT_NE(run.end_detail.find("cakes incomplete: 5 of 10 data frames"), std::string::npos)
        << run.end_detail;
    EXPECT_EQ(named(run.end_detail, "missing_sequences"), std::nullopt) << run.end_detail;
    EXPECT_EQ(run.raw, range(0, kFrames));
    EXPECT_EQ(run.cakes, std::multiset<std::uint64_t>(with_cake.begin(), with_cake.end()));
    EXPECT_NE(archive.log().find("data frames without their cake run=cakes-missing"),
              std::string::npos);

    // The next run gets every cake: nothing is named, the count stays.
    const pb::RunStart complete = run_start("cakes-complete");
    send_run(archive, complete, kFrames, {3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
    ASSERT_EQ(archive.wait_metric(kClosed, 2), 2) << archive.log();
    EXPECT_EQ(archive.metric(kCakesMissing), static_cast<double>(without_cake.size()));
    const RunFile whole = read_run_file(archive.run_path(complete.run_id()));
    ASSERT_TRUE(whole.opened);
    EXPECT_EQ(whole.state, "completed");
    EXPECT_EQ(whole.end_detail, "") << "a run with every frame and cake names nothing";
    EXPECT_EQ(whole.raw, range(0, kFrames));
    EXPECT_EQ(whole.cakes, range(kFirstData, kFrames));
    EXPECT_EQ(archive.stop(), 0) << archive.log();
}

// A data frame whose raw frame never came is named once, in missing_sequences, not again in
// missing_cakes (archive never saw its kind), and a cake without its raw frame is no missing cake.
TEST(ArchiveService, NamesALostRawFrameOnlyInMissingSequences) {
    ArchiveUnderTest archive;
    ASSERT_TRUE(archive.start());
    constexpr std::uint64_t kFrames = 9;
    const pb::RunStart start = run_start("raw-lost");
    archive.send_raw(control(start));
    archive.send_feed(control(start));
    for (std::uint64_t s = 0; s < kFrames; ++s) {
        if (s != 4 && s != 6) {  // 4 has its cake, 6 has none: both raw frames are lost
            archive.send_raw(raw_frame(start.run_id(), s));
        }
    }
    for (const std::uint64_t s : {3, 4, 5, 8}) {  // 7 is stored without its cake
        archive.send_feed(cake(start, s));
    }
    send_run_end(archive, start.run_id(), kFrames);
    ASSERT_EQ(archive.wait_metric(kClosed, 1), 1) << archive.log();

    EXPECT_EQ(archive.metric(kCakesMissing), 1);
    EXPECT_EQ(archive.metric(errors("raw_incomplete")), 1);
    const RunFile run = read_run_file(archive.run_path(start.run_id()));
    ASSERT_TRUE(run.opened);
    EXPECT_EQ(run.state, "completed");
    EXPECT_EQ(named(run.end_detail, "missing_sequences"), (std::multiset<std::uint64_t>{4, 6}))
        << run.end_detail;
    EXPECT_EQ(named(run.end_detail, "missing_cakes"), (std::multiset<std::uint64_t>{7}))
        << run.end_detail;
    EXPECT_NE(run.end_detail.find("raw frames incomplete: 7 archived of 9 sent"), std::string::npos)
        << run.end_detail;
    EXPECT_EQ(archive.stop(), 0) << archive.log();
}

TEST(ArchiveService, NamesFramesAKilledIngestNeverSentFromSequencesEnd) {
    // Ingest was killed holding frames 5 and 6 and its successor resumed the run (docs/faults.md,
    // "A killed ingest"): the RunEnds count the 7 frames the two ingests sent, and only
    // sequences_end says that the run had 9. Both lost frames are named; without sequences_end
    // nothing would be, and the count would read "7 of 7".
    ArchiveUnderTest archive;
    ASSERT_TRUE(archive.start());
    constexpr std::uint64_t kFrames = 9;
    const pb::RunStart start = run_start("ingest-lost");
    archive.send_raw(control(start));
    archive.send_feed(control(start));
    pb::RunEnd end = run_end(start.run_id(), 0);
    for (std::uint64_t s = 0; s < kFrames; ++s) {
        if (s == 5 || s == 6) {
            continue;
        }
        archive.send_raw(raw_frame(start.run_id(), s));
        transport::count_frame(*end.mutable_frames_sent(), frame_header(start.run_id(), s));
        if (kind_of(s) == pb::FRAME_KIND_DATA) {
            archive.send_feed(cake(start, s));
        }
    }
    end.set_sequences_end(kFrames);
    archive.send_feed(control(end));
    archive.send_raw(control(end));
    ASSERT_EQ(archive.wait_metric(kClosed, 1), 1) << archive.log();

    EXPECT_EQ(archive.metric(kCakesMissing), 0);
    const RunFile run = read_run_file(archive.run_path(start.run_id()));
    ASSERT_TRUE(run.opened);
    EXPECT_EQ(run.state, "completed");
    EXPECT_EQ(named(run.end_detail, "missing_sequences"), (std::multiset<std::uint64_t>{5, 6}))
        << run.end_detail;
    EXPECT_NE(run.end_detail.find("raw frames incomplete: 7 archived of 9 sent"), std::string::npos)
        << run.end_detail;
    EXPECT_EQ(archive.stop(), 0) << archive.log();
}

TEST(ArchiveService, ClosesARunAnalyzeNeverEndedAfterIngestsRunEnd) {
    // An analyze restarted after the run's end never hears of it: only ingest's RunEnd (the raw
    // feed's) comes. The file is closed analyze_end_timeout_ms later, completed as ingest said,
    // naming the cakes that never came, instead of staying open until archive stops.
    ArchiveUnderTest archive;
    archive.set_option("analyze_end_timeout_ms", "300");
    ASSERT_TRUE(archive.start());
    constexpr std::uint64_t kFrames = 8;
    const pb::RunStart start = run_start("analyze-gone");
    archive.send_raw(control(start));
    archive.send_feed(control(start));
    for (std::uint64_t s = 0; s < kFrames; ++s) {
        archive.send_raw(raw_frame(start.run_id(), s));
    }
    for (const std::uint64_t s : {3, 4, 5}) {  // forwarded before the old analyze was killed
        archive.send_feed(cake(start, s));
    }
    archive.send_raw(control(run_end(start.run_id(), kFrames)));
    ASSERT_EQ(archive.wait_metric(kClosed, 1), 1) << archive.log();

    EXPECT_EQ(archive.metric(errors("no_analyze_end")), 1);
    EXPECT_EQ(archive.metric(kCakesMissing), 2);
    const RunFile run = read_run_file(archive.run_path(start.run_id()));
    ASSERT_TRUE(run.opened);
    EXPECT_EQ(run.state, "completed");
    EXPECT_EQ(named(run.end_detail, "missing_cakes"), (std::multiset<std::uint64_t>{6, 7}))
        << run.end_detail;
    EXPECT_NE(run.end_detail.find("analyze never ended the run"), std::string::npos)
        << run.end_detail;
    EXPECT_EQ(archive.stop(), 0) << archive.log();
}

// ---- 2. reopening after SIGKILL ---------------------------------------------------------------

TEST(ArchiveService, RestartedAfterSigkillReopensTheRunFileAndCompletesIt) {
    ArchiveUnderTest archive;
    ASSERT_TRUE(archive.start());
    constexpr std::uint64_t kBeforeKill = 8;  // darks, flat, data 3 .. 7; cakes 3 .. 6
    constexpr std::uint64_t kFrames = 20;
    const pb::RunStart start = run_start("reopened");
    const std::filesystem::path path = archive.run_path(start.run_id());

    ASSERT_NO_FATAL_FAILURE(store_run_start(archive, start, kBeforeKill, kBeforeKill - 1));
    const RunFile flushed = read_run_file(path);
    ASSERT_TRUE(flushed.opened);
    EXPECT_EQ(flushed.state, "running");
    EXPECT_EQ(flushed.raw, range(0, kBeforeKill));
    EXPECT_EQ(flushed.cakes, range(kFirstData, kBeforeKill - 1));

    // What a killed archive really loses: messages its feeds had handed over (in its sockets'
    // queues, or taken and not yet written). Stopped, it takes raw frames 8 .. 10 and cakes 7, 8
    // into its socket buffers and never stores them.
    ASSERT_TRUE(archive.pause());
    const std::set<std::uint64_t> lost_raw = {8, 9, 10};
    for (const std::uint64_t s : lost_raw) {
        ASSERT_TRUE(archive.offer_raw(raw_frame(start.run_id(), s), kPatience));
    }
    for (const std::uint64_t s : {7, 8}) {
        archive.send_feed(cake(start, s));
    }
    archive.kill();
    // Frames sent now either wait in the PUSH (no peer: not taken, sent again below) or, while
    // the PUSH has not yet noticed the dead peer, go into its dead pipe and are lost with it.
    std::set<std::uint64_t> taken_while_down;
    std::vector<std::uint64_t> resend;
    for (std::uint64_t s = 11; s < 14; ++s) {
        if (archive.offer_raw(raw_frame(start.run_id(), s), 0ms)) {
            taken_while_down.insert(s);
        } else {
            resend.push_back(s);
        }
    }

    // No RunStart again, as in a real restart: the run's next message reopens the file.
    ASSERT_TRUE(archive.start());
    for (const std::uint64_t s : resend) {
        archive.send_raw(raw_frame(start.run_id(), s));
    }
    for (std::uint64_t s = 14; s < kFrames; ++s) {
        archive.send_raw(raw_frame(start.run_id(), s));
    }
    for (std::uint64_t s = 9; s < kFrames; ++s) {
        archive.send_feed(cake(start, s));
    }
    send_run_end(archive, start.run_id(), kFrames);
    ASSERT_EQ(archive.wait_metric(kClosed, 1), 1) << archive.log();

    EXPECT_EQ(archive.metric(kReopened), 1);
    EXPECT_EQ(archive.metric("anisoflow_archive_runs_opened_total"), 0);
    EXPECT_EQ(archive.metric(errors("reopen")), 0);
    EXPECT_EQ(archive.metric(errors("no_open_run")), 0);
    EXPECT_EQ(archive.metric(errors("create")), 0);
    EXPECT_EQ(archive.metric(errors("raw_incomplete")), 1);
    EXPECT_EQ(archive.metric(kCakesMissing), 1);
    EXPECT_NE(archive.log().find("run file reopened run=reopened"), std::string::npos)
        << archive.log();

    const RunFile run = read_run_file(path);
    ASSERT_TRUE(run.opened) << archive.log();
    EXPECT_EQ(run.state, "completed");
    // Every raw frame and cake once, but those the killed archive lost; those are named.
    std::multiset<std::uint64_t> lost(lost_raw.begin(), lost_raw.end());
    lost.insert(taken_while_down.begin(), taken_while_down.end());
    std::multiset<std::uint64_t> expected_raw = range(0, kFrames);
    for (const std::uint64_t s : lost) {
        expected_raw.erase(s);
    }
    EXPECT_EQ(run.raw, expected_raw) << "taken by the dead pipe: " << taken_while_down.size();
    std::multiset<std::uint64_t> expected_cakes = range(kFirstData, kFrames);
    expected_cakes.erase(7);
    expected_cakes.erase(8);
    EXPECT_EQ(run.cakes, expected_cakes);
    EXPECT_EQ(named(run.end_detail, "missing_sequences"), lost) << run.end_detail;
    // Cake 8 is not named again: its raw frame is named already.
    EXPECT_EQ(named(run.end_detail, "missing_cakes"), (std::multiset<std::uint64_t>{7}))
        << run.end_detail;
    ASSERT_EQ(run.frames_archived.size(), 5U);  // data_p, data_n, dark, flat, background
    EXPECT_EQ(run.frames_archived[0] + run.frames_archived[1] + run.frames_archived[2] +
                  run.frames_archived[3] + run.frames_archived[4],
              kFrames - lost.size());
    EXPECT_EQ(run.frames_archived[2], kDarks);
    EXPECT_EQ(run.frames_archived[3], 1U);
    EXPECT_EQ(archive.stop(), 0) << archive.log();
    std::printf("frames taken by the dead archive's pipe after SIGKILL: %zu\n",
                taken_while_down.size());
}

// An operator's SIGTERM mid-run (a restart, a rolling update) is not the end of the run: the
// file is closed "interrupted", with everything archive had stored, and the archive started next
// goes on with it as with a killed one's (docs/archive.md, "Stopping mid-run").
TEST(ArchiveService, StoppedMidRunLeavesTheFileInterruptedAndTheNextArchiveCompletesIt) {
    ArchiveUnderTest archive;
    ASSERT_TRUE(archive.start());
    constexpr std::uint64_t kBeforeStop = 8;  // darks, flat, data 3 .. 7; cakes 3 .. 7
    constexpr std::uint64_t kFrames = 16;
    const pb::RunStart start = run_start("interrupted");
    const std::filesystem::path path = archive.run_path(start.run_id());

    ASSERT_NO_FATAL_FAILURE(store_run_start(archive, start, kBeforeStop, kBeforeStop));
    EXPECT_EQ(archive.stop(), 0) << archive.log();
    EXPECT_NE(archive.log().find(fmt::format("run file interrupted run=interrupted raw_frames={} "
                                             "reduced_frames={}",
                                             kBeforeStop, kBeforeStop - kFirstData)),
              std::string::npos)
        << archive.log();

    const RunFile stopped = read_run_file(path);
    ASSERT_TRUE(stopped.opened) << archive.log();
    EXPECT_EQ(stopped.state, "interrupted");
    EXPECT_EQ(stopped.raw, range(0, kBeforeStop));
    EXPECT_EQ(stopped.cakes, range(kFirstData, kBeforeStop));

    // No RunStart again: the run's next message reopens the file.
    ASSERT_TRUE(archive.start());
    for (std::uint64_t s = kBeforeStop; s < kFrames; ++s) {
        archive.send_raw(raw_frame(start.run_id(), s));
        archive.send_feed(cake(start, s));
    }
    send_run_end(archive, start.run_id(), kFrames);
    ASSERT_EQ(archive.wait_metric(kClosed, 1), 1) << archive.log();
    EXPECT_EQ(archive.metric(kReopened), 1);
    EXPECT_EQ(archive.metric(errors("reopen")), 0);
    EXPECT_EQ(archive.metric(errors("raw_incomplete")), 0);
    EXPECT_EQ(archive.metric(kCakesMissing), 0);

    const RunFile run = read_run_file(path);
    ASSERT_TRUE(run.opened) << archive.log();
    EXPECT_EQ(run.state, "completed") << run.end_detail;
    EXPECT_EQ(run.raw, range(0, kFrames));
    EXPECT_EQ(run.cakes, range(kFirstData, kFrames));
    EXPECT_EQ(archive.stop(), 0) << archive.log();
}

// The frames and cakes the killed archive had taken but not yet written are gone with it; here
// none were in flight, so the restarted archive must name exactly the cakes that never came.
TEST(ArchiveService, RestartedArchiveNamesTheCakesOfTheReopenedRunThatNeverCame) {
    ArchiveUnderTest archive;
    ASSERT_TRUE(archive.start());
    constexpr std::uint64_t kFrames = 12;
    const pb::RunStart start = run_start("reopened-cakes");
    archive.send_raw(control(start));
    archive.send_feed(control(start));
    for (std::uint64_t s = 0; s < 8; ++s) {
        archive.send_raw(raw_frame(start.run_id(), s));
    }
    for (const std::uint64_t s : {3, 5}) {  // 4, 6, 7 stored without a cake before the kill
        archive.send_feed(cake(start, s));
    }
    ASSERT_EQ(archive.wait_metric(kRawWritten, 8), 8) << archive.log();
    ASSERT_EQ(archive.wait_metric(kCakesWritten, 2), 2) << archive.log();
    archive.kill();

    ASSERT_TRUE(archive.start());
    // A cake first: the archive feed's message reopens the file (and is appended to it).
    archive.send_feed(cake(start, 8));
    for (std::uint64_t s = 8; s < kFrames; ++s) {
        archive.send_raw(raw_frame(start.run_id(), s));
    }
    archive.send_feed(cake(start, 10));  // 9 and 11 never come
    send_run_end(archive, start.run_id(), kFrames);
    ASSERT_EQ(archive.wait_metric(kClosed, 1), 1) << archive.log();

    EXPECT_EQ(archive.metric(kReopened), 1);
    EXPECT_EQ(archive.metric(kCakesMissing), 5);
    const RunFile run = read_run_file(archive.run_path(start.run_id()));
    ASSERT_TRUE(run.opened);
    EXPECT_EQ(run.state, "completed");
    EXPECT_EQ(run.raw, range(0, kFrames));
    EXPECT_EQ(run.cakes, (std::multiset<std::uint64_t>{3, 5, 8, 10}));
    EXPECT_EQ(named(run.end_detail, "missing_cakes"),
              (std::multiset<std::uint64_t>{4, 6, 7, 9, 11}))
        << run.end_detail;
    EXPECT_EQ(named(run.end_detail, "missing_sequences"), std::nullopt) << run.end_detail;
    EXPECT_EQ(archive.stop(), 0) << archive.log();
}

// ---- 3. a completed file stays completed ------------------------------------------------------

TEST(ArchiveService, NeverReopensACompletedRunFile) {
    ArchiveUnderTest archive;
    ASSERT_TRUE(archive.start());
    constexpr std::uint64_t kFrames = 6;
    const pb::RunStart start = run_start("completed");
    const std::filesystem::path path = archive.run_path(start.run_id());
    send_run(archive, start, kFrames, {3, 4, 5});
    ASSERT_EQ(archive.wait_metric(kClosed, 1), 1) << archive.log();
    const std::string closed_bytes = file_bytes(path);
    ASSERT_FALSE(closed_bytes.empty());

    // The archive that closed it: late messages of the run find no open file.
    archive.send_feed(cake(start, 3));
    archive.send_raw(raw_frame(start.run_id(), kFrames));
    archive.send_feed(control(run_end(start.run_id(), kFrames)));
    EXPECT_EQ(archive.wait_metric(errors("no_open_run"), 3), 3) << archive.log();
    EXPECT_EQ(archive.metric(errors("reopen")), 0);
    EXPECT_EQ(archive.metric(kReopened), 0);
    EXPECT_EQ(archive.metric(kClosed), 1);
    EXPECT_EQ(archive.stop(), 0) << archive.log();

    // A restarted archive does not know the run: the file's run_state refuses the reopen, once
    // (said in the log, not an error: a sender that missed the finished receipt sends again; the
    // message is counted as no_open_run), and the run is not tried again.
    ASSERT_TRUE(archive.start());
    const std::size_t log_from = archive.log_size();
    archive.send_feed(cake(start, 4));
    EXPECT_TRUE(testing::wait_for_text(
        archive.log_path(), "run file already closed run=" + start.run_id() + " state=completed",
        kPatience, log_from))
        << archive.log();
    archive.send_raw(raw_frame(start.run_id(), kFrames));
    // A repeated RunStart (a sender that missed the finished receipt) neither reopens nor
    // truncates it, nor tries to create it again.
    archive.send_feed(control(start));
    archive.send_feed(control(run_end(start.run_id(), kFrames)));
    EXPECT_EQ(archive.wait_metric(errors("no_open_run"), 3), 3) << archive.log();
    EXPECT_EQ(archive.metric(errors("create")), 0) << archive.log();
    EXPECT_EQ(archive.metric(errors("reopen")), 0);
    EXPECT_EQ(archive.metric(kReopened), 0);
    EXPECT_EQ(archive.metric(kClosed), 0);
    EXPECT_EQ(archive.metric(kRawWritten), 0);
    EXPECT_EQ(archive.metric(kCakesWritten), 0);
    EXPECT_EQ(archive.log().find("run file reopened", log_from), std::string::npos)
        << archive.log();
    EXPECT_EQ(archive.stop(), 0) << archive.log();

    EXPECT_EQ(file_bytes(path), closed_bytes) << "the completed file was changed";
    const RunFile run = read_run_file(path);
    ASSERT_TRUE(run.opened);
    EXPECT_EQ(run.state, "completed");
    EXPECT_EQ(run.raw, range(0, kFrames));
    EXPECT_EQ(run.cakes, range(kFirstData, kFrames));
    EXPECT_EQ(run.end_detail, "");
}

// ---- 4. receipts
// ---------------------------------------------------------------------------------

// The RunReceipt of `run_id` in `receipts`; null when it is not listed.
const pb::RunReceipt* receipt_of(const pb::ArchiveReceipts& receipts, const std::string& run_id) {
    for (const pb::RunReceipt& run : receipts.runs()) {
        if (run.run_id() == run_id) {
            return &run;
        }
    }
    return nullptr;
}

std::multiset<std::uint64_t> in_ranges(
    const google::protobuf::RepeatedPtrField<pb::SequenceRange>& ranges) {
    std::multiset<std::uint64_t> sequences;
    for (const pb::SequenceRange& r : ranges) {
        for (std::uint64_t s = r.first(); s <= r.last(); ++s) {
            sequences.insert(s);
        }
    }
    return sequences;
}

transport::Multipart result(const std::string& run_id, std::uint64_t frames_p,
                            std::uint64_t frames_n) {
    pb::AnalysisResult header;
    header.set_run_id(run_id);
    header.set_mode(pb::EXTRACTION_MODE_PN);
    header.set_normalisation(pb::NORMALISATION_HIGH_Q);
    header.set_mechanism(pb::MECHANISM_BOND_STRETCHING);
    header.set_n_frames_p(frames_p);
    header.set_n_frames_n(frames_n);
    auto message = transport::encode_result(header, {});
    EXPECT_TRUE(message) << message.error().message;
    return message ? std::move(*message) : transport::Multipart{};
}

TEST(ArchiveService, ReceiptsListWhatTheFileHoldsAndWhatComesAgainIsStoredOnce) {
    ArchiveUnderTest archive;
    archive.enable_receipts();
    ASSERT_TRUE(archive.start());
    constexpr std::uint64_t kFrames = 13;
    const pb::RunStart start = run_start("receipted");
    const std::string& id = start.run_id();

    archive.send_raw(control(start));
    archive.send_feed(control(start));
    for (std::uint64_t s = 0; s < 8; ++s) {
        archive.send_raw(raw_frame(id, s));
    }
    for (const std::uint64_t s : {3, 4, 5}) {
        archive.send_feed(cake(start, s));
    }
    archive.send_feed(result(id, 2, 1));
    const auto first = archive.wait_receipts([&](const pb::ArchiveReceipts& r) {
        const pb::RunReceipt* run = receipt_of(r, id);
        return run != nullptr && in_ranges(run->raw()) == range(0, 8) &&
               in_ranges(run->cakes()) == range(3, 6) && run->has_result();
    });
    ASSERT_TRUE(first) << archive.log();
    EXPECT_NE(first->session(), 0U);
    const pb::RunReceipt* listed = receipt_of(*first, id);
    EXPECT_EQ(listed->raw_size(), 1) << "one range for consecutive frames";
    EXPECT_EQ(listed->result_frames_p(), 2U);
    EXPECT_EQ(listed->result_frames_n(), 1U);
    EXPECT_FALSE(listed->finished());

    // A frame archive refuses for good (not the run's detector shape) is receipted as refused:
    // its sender forgets it instead of keeping it, and holding the chain back, for ever.
    archive.send_raw(testing::small_run_frame(id, 20, kSide / 2));
    const auto refused = archive.wait_receipts([&](const pb::ArchiveReceipts& r) {
        const pb::RunReceipt* run = receipt_of(r, id);
        return run != nullptr && in_ranges(run->raw_refused()) == range(20, 21);
    });
    ASSERT_TRUE(refused) << archive.log();
    EXPECT_EQ(archive.metric(errors("raw_write")), 1);

    // Sent again (a sender that saw no receipt yet): skipped, counted.
    archive.send_raw(raw_frame(id, 2));
    archive.send_feed(cake(start, 4));
    archive.send_feed(result(id, 2, 1));
    const std::string skipped = "anisoflow_archive_duplicates_skipped_total{kind=\"";
    EXPECT_EQ(archive.wait_metric(skipped + "raw_frame\"}", 1), 1) << archive.log();
    EXPECT_EQ(archive.wait_metric(skipped + "cake\"}", 1), 1);
    EXPECT_EQ(archive.wait_metric(skipped + "result\"}", 1), 1);
    EXPECT_EQ(archive.metric(kRawWritten), 8);
    EXPECT_EQ(archive.metric(kCakesWritten), 3);
    EXPECT_EQ(archive.metric("anisoflow_archive_results_written_total"), 1);

    // SIGKILLed and started again: a new session, which knows no run until a message of it comes;
    // then the reopened file's own contents are receipted, the last result included.
    archive.kill();
    ASSERT_TRUE(archive.start());
    const auto restarted = archive.wait_receipts(
        [&](const pb::ArchiveReceipts& r) { return r.session() != first->session(); });
    ASSERT_TRUE(restarted) << archive.log();
    EXPECT_EQ(receipt_of(*restarted, id), nullptr);
    // What a sender kept goes again, the stored part of it included.
    for (std::uint64_t s = 6; s < kFrames; ++s) {
        archive.send_raw(raw_frame(id, s));
    }
    for (const std::uint64_t s : {5, 6, 7}) {
        archive.send_feed(cake(start, s));
    }
    archive.send_feed(result(id, 2, 1));
    const auto reopened = archive.wait_receipts([&](const pb::ArchiveReceipts& r) {
        const pb::RunReceipt* run = receipt_of(r, id);
        return r.session() == restarted->session() && run != nullptr &&
               in_ranges(run->raw()) == range(0, kFrames) && in_ranges(run->cakes()) == range(3, 8);
    });
    ASSERT_TRUE(reopened) << archive.log();
    EXPECT_TRUE(receipt_of(*reopened, id)->has_result()) << "the last result, read from the file";
    EXPECT_EQ(archive.wait_metric(skipped + "result\"}", 1), 1) << "stored twice";
    EXPECT_EQ(archive.metric(skipped + "raw_frame\"}"), 2);  // 6 and 7
    EXPECT_EQ(archive.metric(skipped + "cake\"}"), 1);       // 5

    for (std::uint64_t s = 8; s < kFrames; ++s) {
        archive.send_feed(cake(start, s));
    }
    archive.send_feed(control(run_end(id, kFrames)));
    archive.send_raw(control(run_end(id, kFrames)));
    const auto finished = archive.wait_receipts([&](const pb::ArchiveReceipts& r) {
        const pb::RunReceipt* run = receipt_of(r, id);
        return run != nullptr && run->finished();
    });
    ASSERT_TRUE(finished) << archive.log();
    EXPECT_EQ(archive.stop(), 0) << archive.log();

    // A third process never had the run open: a message of it (a sender that missed the
    // finished receipt) makes it say the run is finished, and changes nothing in the file.
    ASSERT_TRUE(archive.start());
    archive.send_feed(control(run_end(id, kFrames)));
    const auto told = archive.wait_receipts([&](const pb::ArchiveReceipts& r) {
        const pb::RunReceipt* run = receipt_of(r, id);
        return run != nullptr && run->finished();
    });
    ASSERT_TRUE(told) << archive.log();
    EXPECT_EQ(archive.metric(errors("reopen")), 0);
    EXPECT_EQ(archive.stop(), 0) << archive.log();

    const RunFile run = read_run_file(archive.run_path(id));
    ASSERT_TRUE(run.opened);
    EXPECT_EQ(run.state, "completed") << run.end_detail;
    EXPECT_EQ(run.raw, range(0, kFrames)) << "each raw frame once";
    EXPECT_EQ(run.cakes, range(kFirstData, kFrames)) << "each cake once";
    EXPECT_EQ(run.end_detail, "");
}

}  // namespace
}  // namespace anisoflow
