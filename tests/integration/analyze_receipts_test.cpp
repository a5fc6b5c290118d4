// Analyze's side of archive receipts (docs/protocol.md, "Archive receipts"), deterministic: the
// real analyze loop on a thread, a DEALER standing in for a reduce worker, a PULL for archive's
// feed and a PUB for archive's receipts, whose sessions and ranges are the test's choice.
//  - every message to archive is kept until a receipt covers it; at max_unreceipted_messages
//    analyze takes no more cakes;
//  - receipts of a new session (a restarted archive) make analyze send again, in order, what is
//    kept, and nothing a receipt covered;
//  - once receipts cover what is kept, the cakes held back go on.
// The fault suite (tests/faults, kill-archive) reaches the same code with real processes.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>
#include <zmq.hpp>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/runtime/config_loader.hpp"
#include "anisoflow/runtime/service_thread.hpp"
#include "anisoflow/testing/child_process.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/payload.hpp"
#include "anisoflow/transport/socket.hpp"

#include "analyze_service.hpp"
#include "run_messages.hpp"

namespace anisoflow {
namespace {

namespace pb = ::anisoflow::stream::v1;
namespace cfg = ::anisoflow::config::v1;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr auto kPatience = 60s;
#else
constexpr auto kPatience = 20s;
#endif
constexpr std::uint32_t kSide = 64;
constexpr std::uint32_t kMaxUnreceipted = 4;

transport::Multipart cake(const pb::RunStart& start, std::uint64_t sequence) {
    return testing::small_run_cake(start, sequence, pb::ORIENTATION_P);
}

pb::ArchiveReceipts receipts(std::uint64_t session, const std::string& run_id,
                             std::optional<std::pair<std::uint64_t, std::uint64_t>> cakes) {
    pb::ArchiveReceipts out;
    out.set_session(session);
    if (cakes) {
        pb::RunReceipt& run = *out.add_runs();
        run.set_run_id(run_id);
        pb::SequenceRange& range = *run.add_cakes();
        range.set_first(cakes->first);
        range.set_last(cakes->second);
    }
    return out;
}

class AnalyzeWithReceipts {
  public:
    AnalyzeWithReceipts()
        : sockets_(std::filesystem::temp_directory_path() / ("afr-" + std::to_string(::getpid()))) {
        std::filesystem::create_directories(sockets_);
        const auto ipc = [&](const char* name) { return "ipc://" + (sockets_ / name).string(); };
        EXPECT_TRUE(runtime::merge_defaults(config_).has_value());
        cfg::AnalyzeEndpoints& e = *config_.mutable_endpoints();
        e.mutable_reduced_in()->set_address("@" + ipc("reduced"));
        e.mutable_control_in()->set_address(">" + ipc("control"));
        e.mutable_results_out()->set_address("@" + ipc("results"));
        e.mutable_archive_out()->set_address("@" + ipc("archive"));
        e.mutable_receipts_in()->set_address(">" + ipc("receipts"));
        config_.set_max_unreceipted_messages(kMaxUnreceipted);
        config_.set_recompute_interval_ms(60'000);  // no result in the way of the cakes
        config_.mutable_metrics()->set_enabled(false);
        const auto open = [&](zmq::socket_type type, const std::string& address) {
            auto socket = transport::open_socket(context_, type, address);
            EXPECT_TRUE(socket) << address;
            return socket ? std::move(*socket) : zmq::socket_t{};
        };
        archive_ = open(zmq::socket_type::pull, ">" + ipc("archive"));
        control_ = open(zmq::socket_type::pub, "@" + ipc("control"));
        receipts_ = open(zmq::socket_type::pub, "@" + ipc("receipts"));
        auto started = runtime::ServiceThread::start(
            "analyze", [this](runtime::ServiceContext& c) { return analyzer::run(config_, c); });
        EXPECT_TRUE(started) << started.error().message;
        if (started) {
            service_ = std::move(*started);
        }
        reduced_ = open(zmq::socket_type::dealer, ">" + ipc("reduced"));
    }
    ~AnalyzeWithReceipts() {
        service_.reset();
        std::error_code ignored;
        std::filesystem::remove_all(sockets_, ignored);
    }
    AnalyzeWithReceipts(const AnalyzeWithReceipts&) = delete;
    AnalyzeWithReceipts& operator=(const AnalyzeWithReceipts&) = delete;
    AnalyzeWithReceipts(AnalyzeWithReceipts&&) = delete;
    AnalyzeWithReceipts& operator=(AnalyzeWithReceipts&&) = delete;

    void send_cake(transport::Multipart parts) {
        auto sent = transport::send(reduced_, parts, kPatience);
        ASSERT_TRUE(sent && *sent);
    }

    /// The next message on archive's feed, named "RunStart" or "cake N"; while waiting, the
    /// RunStart and `standing` receipts are published again and again (a PUB drops what a
    /// subscriber not yet connected would get). Empty after `patience`.
    std::string next_for_archive(const pb::RunStart& start, const pb::ArchiveReceipts& standing,
                                 std::chrono::milliseconds patience = kPatience) {
        const auto deadline = Clock::now() + patience;
        while (Clock::now() < deadline) {
            publish(control_, transport::encode_control(start));
            publish(receipts_, transport::encode_control(standing));
            auto received = transport::receive(archive_, 20ms);
            if (!received || !*received) {
                continue;
            }
            auto decoded = transport::decode(std::move(**received));
            EXPECT_TRUE(decoded);
            if (!decoded) {
                return "undecodable";
            }
            if (std::holds_alternative<transport::RunStartMessage>(*decoded)) {
                return "RunStart";
            }
            if (const auto* c = std::get_if<transport::ReducedMessage>(&*decoded)) {
                return "cake " + std::to_string(c->header.sequence());
            }
            return std::string(transport::message_type_name(*decoded));
        }
        return "";
    }

    /// Publishes `standing` until analyze has seen `sessions` archive sessions; false if it did
    /// not. What analyze keeps before it sees the first receipts goes again (it cannot know what
    /// that archive has), so a test starts once the first session is known.
    bool until_sessions(const pb::ArchiveReceipts& standing, double sessions) {
        const auto deadline = Clock::now() + kPatience;
        while (Clock::now() < deadline) {
            publish(receipts_, transport::encode_control(standing));
            if (metric("anisoflow_analyze_archive_sessions_total") >= sessions) {
                return true;
            }
            std::this_thread::sleep_for(10ms);
        }
        return false;
    }

    double metric(const std::string& series) const {
        return testing::metric_value(service_->metrics(), series);
    }

  private:
    static void publish(zmq::socket_t& socket, Result<transport::Multipart> parts) {
        ASSERT_TRUE(parts);
        ASSERT_TRUE(transport::try_send(socket, *parts));
    }

    std::filesystem::path sockets_;
    cfg::AnalyzeConfig config_;
    zmq::context_t context_;
    zmq::socket_t archive_;
    zmq::socket_t control_;
    zmq::socket_t receipts_;
    zmq::socket_t reduced_;
    std::unique_ptr<runtime::ServiceThread> service_;
};

TEST(AnalyzeReceipts, KeepsWhatArchiveHasNotStoredAndSendsItAgainToARestartedArchive) {
    AnalyzeWithReceipts analyze;
    const pb::RunStart start = testing::small_run_start("receipts-run", kSide);
    const std::string& id = start.run_id();
    constexpr std::uint64_t kOld = 0x0A;  // the first archive process
    constexpr std::uint64_t kNew = 0x0B;  // the restarted one
    const pb::ArchiveReceipts none = receipts(kOld, id, std::nullopt);

    ASSERT_TRUE(analyze.until_sessions(none, 1));
    ASSERT_EQ(analyze.next_for_archive(start, none), "RunStart");
    analyze.send_cake(cake(start, 3));
    analyze.send_cake(cake(start, 4));
    EXPECT_EQ(analyze.next_for_archive(start, none), "cake 3");
    EXPECT_EQ(analyze.next_for_archive(start, none), "cake 4");

    // Archive stored the RunStart (the run is listed) and cake 3: cake 4 is still kept.
    const pb::ArchiveReceipts stored_3 = receipts(kOld, id, std::pair{3, 3});
    EXPECT_EQ(analyze.next_for_archive(start, stored_3, 300ms), "");
    EXPECT_EQ(analyze.metric("anisoflow_analyze_archive_unreceipted_messages"), 1);

    // At the bound (4 kept: cakes 4 .. 7) analyze takes no more cakes: 8 and 9 wait.
    for (std::uint64_t s = 5; s <= 9; ++s) {
        analyze.send_cake(cake(start, s));
    }
    for (const char* expected : {"cake 5", "cake 6", "cake 7"}) {
        EXPECT_EQ(analyze.next_for_archive(start, stored_3), expected);
    }
    EXPECT_EQ(analyze.next_for_archive(start, stored_3, 500ms), "") << "beyond the bound";
    EXPECT_EQ(analyze.metric("anisoflow_analyze_archive_unreceipted_messages"), kMaxUnreceipted);

    // A restarted archive (new session, knows nothing yet): everything kept goes again, in
    // order; the RunStart and cake 3 were receipted and do not.
    const pb::ArchiveReceipts restarted = receipts(kNew, id, std::nullopt);
    for (const char* expected : {"cake 4", "cake 5", "cake 6", "cake 7"}) {
        EXPECT_EQ(analyze.next_for_archive(start, restarted), expected);
    }
    EXPECT_EQ(analyze.next_for_archive(start, restarted, 300ms), "") << "sent again only once";
    EXPECT_EQ(analyze.metric("anisoflow_analyze_archive_resent_total"), kMaxUnreceipted);
    EXPECT_EQ(analyze.metric("anisoflow_analyze_archive_sessions_total"), 2);

    // The new archive stores them: the cakes held back go on.
    const pb::ArchiveReceipts stored_7 = receipts(kNew, id, std::pair{3, 7});
    EXPECT_EQ(analyze.next_for_archive(start, stored_7), "cake 8");
    EXPECT_EQ(analyze.next_for_archive(start, stored_7), "cake 9");
    EXPECT_EQ(analyze.metric("anisoflow_analyze_frames_merged_total"), 7);
}

}  // namespace
}  // namespace anisoflow
