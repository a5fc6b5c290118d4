// anisoflow-ingest resumes the run a crashed predecessor left open in state_dir (docs/faults.md,
// "A killed ingest"), in process over real tcp sockets: the test is the source (an anisoflow
// stream PUSH) and a FakeReducer the worker. The crash is made deterministic: the state file is
// copied while the first ingest runs, and put back after that ingest's orderly stop (which ends
// the run aborted and removes the file), so the second ingest finds exactly what the first one
// wrote mid-run. The fault suite (tests/faults) SIGKILLs the real binary at random moments.
//  - the resumed run takes the rest of its frames (none refused as of no run), its RunEnd counts
//    the frames of both ingests, its sequences_end names the run's length (the frames the first
//    ingest took with it are then known), its detail says it was resumed; the file goes at the end;
//  - a state file that does not read is set aside and reported, and ingest serves as usual.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "anisoflow/state/v1/state.pb.h"
#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/testing/test_paths.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/socket.hpp"

#include "ingest_harness.hpp"
#include "ingest_service.hpp"
#include "run_messages.hpp"

namespace anisoflow::ingest {
namespace {

using namespace harness;  // NOLINT(google-build-using-namespace): the test's vocabulary
namespace fs = std::filesystem;
constexpr std::uint32_t kSide = 16;

cfg::IngestConfig resumable_config(const fs::path& state_dir) {
    cfg::IngestConfig config = base_config();
    config.mutable_source()->set_kind(cfg::SOURCE_KIND_ANISOFLOW_STREAM);
    config.mutable_source()->set_stream_address("@tcp://127.0.0.1:*");
    config.set_state_dir(state_dir.string());
    return config;
}

// The test's stream into ingest, as `anisoflow simulate --stream` connects it.
struct Source {
    Source(zmq::context_t& context, const IngestEndpoints& endpoints) {
        auto push = transport::open_socket(context, zmq::socket_type::push, ">" + endpoints.source,
                                           transport::SocketOptions{});
        EXPECT_TRUE(push) << push.error().message;
        socket = std::move(*push);
    }
    void send(transport::Multipart parts) {
        for (std::size_t i = 0; i < parts.size(); ++i) {
            ASSERT_TRUE(socket.send(
                parts[i], i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none));
        }
    }
    template <typename Control>
    void send_control(const Control& message) {
        auto parts = transport::encode_control(message);
        ASSERT_TRUE(parts) << parts.error().message;
        send(std::move(*parts));
    }
    void send_frame(const std::string& run_id, std::uint64_t sequence) {
        send(testing::small_run_frame(run_id, sequence, kSide));
    }
    /// The source's RunEnd, counting `sent` (what `anisoflow simulate --stream` sends).
    void send_end(const std::string& run_id, const pb::FrameCounts& sent) {
        pb::RunEnd end;
        end.set_run_id(run_id);
        end.set_reason(pb::RUN_END_REASON_COMPLETED);
        *end.mutable_frames_sent() = sent;
        send_control(end);
    }
    zmq::socket_t socket;
};

std::string file_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Counts of frames `sequences` of the small run, as RunEnd.frames_sent has them.
pb::FrameCounts counts_of(const std::string& run_id, const std::set<std::uint64_t>& sequences) {
    pb::FrameCounts counts;
    for (const std::uint64_t s : sequences) {
        transport::count_frame(counts, testing::small_run_header(run_id, s, kSide));
    }
    return counts;
}

TEST(IngestResume, ARestartedIngestResumesTheRunItsPredecessorLeftOpen) {
    const fs::path state_dir = testing::scratch_dir() / "state";
    const fs::path state_file = state_dir / "open_run.binpb";
    const cfg::IngestConfig config = resumable_config(state_dir);
    const pb::RunStart start = testing::small_run_start("resumed", kSide);
    zmq::context_t context;

    // 1. The first ingest sends frames 0..4 on; the test keeps its state file from then, as a
    //    SIGKILL would leave it.
    std::string left_open;
    {
        RunningIngest first(config);
        FakeReducer reducer(context, first.endpoints());
        Source source(context, first.endpoints());
        source.send_control(start);
        for (std::uint64_t s = 0; s < 5; ++s) {
            source.send_frame(start.run_id(), s);
        }
        ASSERT_TRUE(reducer.until_frames(5));
        // Saved after each dispatch, so just after the worker may have the frame.
        state::v1::IngestOpenRun saved;
        const auto deadline = Clock::now() + kPatience;
        while (Clock::now() < deadline &&
               !(saved.ParseFromString(file_bytes(state_file)) && saved.sequences_end() == 5)) {
            std::this_thread::sleep_for(10ms);
        }
        ASSERT_EQ(saved.sequences_end(), 5U) << state_file;
        EXPECT_EQ(saved.start().run_id(), start.run_id());
        EXPECT_EQ(saved.frames_sent().SerializeAsString(),
                  counts_of(start.run_id(), {0, 1, 2, 3, 4}).SerializeAsString());
        EXPECT_EQ(saved.resumes(), 0U);
        left_open = file_bytes(state_file);
    }
    // An orderly stop ends the run (aborted) and forgets it: nothing to resume.
    EXPECT_FALSE(fs::exists(state_file));
    std::ofstream(state_file, std::ios::binary) << left_open;

    // 2. The second ingest finds it: frames 7..9 and the source's RunEnd (10 frames) are the
    //    run's; 5 and 6 went down with the first ingest.
    RunningIngest second(config);
    FakeReducer reducer(context, second.endpoints());
    Source source(context, second.endpoints());
    for (std::uint64_t s = 7; s < 10; ++s) {
        source.send_frame(start.run_id(), s);
    }
    source.send_end(start.run_id(), counts_of(start.run_id(), {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));

    const auto end = reducer.until_run_end(start.run_id());
    ASSERT_TRUE(end) << "no RunEnd\n" << second.metrics();
    EXPECT_EQ(end->reason(), pb::RUN_END_REASON_COMPLETED) << end->detail();
    EXPECT_EQ(end->frames_sent().SerializeAsString(),
              counts_of(start.run_id(), {0, 1, 2, 3, 4, 7, 8, 9}).SerializeAsString())
        << end->frames_sent().DebugString();
    EXPECT_EQ(end->sequences_end(), 10U);
    EXPECT_NE(end->detail().find("resumed after 1 restart of ingest"), std::string::npos)
        << end->detail();
    std::set<std::uint64_t> dispatched;
    for (const ReceivedFrame& frame : reducer.frames) {
        dispatched.insert(frame.header.sequence());
    }
    EXPECT_EQ(dispatched, (std::set<std::uint64_t>{7, 8, 9}));
    EXPECT_TRUE(reducer.starts.contains(start.run_id())) << "the worker got no RunStart";
    const std::string metrics = second.metrics();
    EXPECT_NE(metrics.find("anisoflow_ingest_runs_resumed_total 1"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("anisoflow_ingest_frames_rejected_total{reason=\"no_run\"} 0"),
              std::string::npos)
        << metrics;
    EXPECT_FALSE(fs::exists(state_file)) << "the ended run is still kept";
}

TEST(IngestResume, AnUnreadableStateFileIsSetAsideAndIngestServes) {
    const fs::path state_dir = testing::scratch_dir() / "state";
    fs::create_directories(state_dir);
    std::ofstream(state_dir / "open_run.binpb", std::ios::binary) << "\x0a\xff not a run";
    const pb::RunStart start = testing::small_run_start("after-bad-state", kSide);

    RunningIngest ingest(resumable_config(state_dir));
    zmq::context_t context;
    FakeReducer reducer(context, ingest.endpoints());
    Source source(context, ingest.endpoints());
    source.send_control(start);
    for (std::uint64_t s = 0; s < 4; ++s) {
        source.send_frame(start.run_id(), s);
    }
    source.send_end(start.run_id(), {});  // no count: sequences_end is what ingest saw
    const auto end = reducer.until_run_end(start.run_id());
    ASSERT_TRUE(end);
    EXPECT_EQ(end->reason(), pb::RUN_END_REASON_COMPLETED) << end->detail();
    EXPECT_EQ(end->frames_sent().SerializeAsString(),
              counts_of(start.run_id(), {0, 1, 2, 3}).SerializeAsString());
    EXPECT_TRUE(fs::exists(state_dir / "open_run.binpb.unreadable"));
    EXPECT_NE(ingest.metrics().find("anisoflow_ingest_runs_resumed_total 0"), std::string::npos);
}

}  // namespace
}  // namespace anisoflow::ingest
