// Acknowledged dispatch (docs/protocol.md) through real ROUTER/DEALER sockets, inproc and tcp:
// credits respected, every frame acknowledged once, a frame kept until analyze's receipt, a
// silent or restarted worker's unconfirmed frames re-dispatched, calibration frames to every
// worker before data, a late joiner primed first.

#include "anisoflow/transport/dispatch.hpp"

#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/transport/payload.hpp"

namespace anisoflow::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Only reached when something is broken; a passing test never waits this long.
constexpr auto kPatience = 5s;
constexpr std::uint32_t kRows = 4;
constexpr std::uint32_t kCols = 5;

pb::RunStart run_start(const std::string& run_id) {
    pb::RunStart start;
    start.set_run_id(run_id);
    start.mutable_config()->set_composition("Cu50Zr50");
    return start;
}

pb::FrameHeader frame_header(const std::string& run_id, std::uint64_t sequence,
                             pb::FrameKind kind) {
    pb::FrameHeader header;
    header.set_run_id(run_id);
    header.set_sequence(sequence);
    header.set_kind(kind);
    header.set_orientation(kind == pb::FRAME_KIND_DATA ? pb::ORIENTATION_P
                                                       : pb::ORIENTATION_UNSPECIFIED);
    header.set_encoding(pb::ENCODING_RAW);
    header.set_dtype(pb::PIXEL_DTYPE_UINT16);
    header.set_rows(kRows);
    header.set_cols(kCols);
    return header;
}

// Pixels that name their frame: every pixel holds 1000 + sequence, plus its index.
std::vector<std::uint16_t> pixels_of(std::uint64_t sequence) {
    std::vector<std::uint16_t> pixels(std::size_t{kRows} * kCols);
    for (std::size_t i = 0; i < pixels.size(); ++i) {
        pixels[i] = static_cast<std::uint16_t>(1000 + sequence + i);
    }
    return pixels;
}

bool payload_matches(const FrameMessage& frame) {
    const auto expected = pixels_of(frame.header.sequence());
    return frame.payload.size() == expected.size() * sizeof(std::uint16_t) &&
           std::memcmp(frame.payload.data(), expected.data(), frame.payload.size()) == 0;
}

// What one worker saw, in order: "start:<run>", "dark:<seq>", "flat:<seq>", "data:<seq>".
struct WorkerLog {
    std::vector<std::string> events;
    std::vector<FrameMessage> unacked;
    std::multiset<std::uint64_t> data_sequences;
    bool payloads_ok = true;
};

// Reads what is ready on `link` (without waiting) into `log`.
void drain_link(WorkerLink& link, WorkerLog& log) {
    while (true) {
        auto received = link.receive(0ms);
        ASSERT_TRUE(received) << received.error().message;
        if (!*received) {
            return;
        }
        ASSERT_TRUE(**received) << (*received)->error().error.message;
        auto& message = ***received;
        if (auto* start = std::get_if<RunStartMessage>(&message)) {
            log.events.push_back("start:" + start->start.run_id());
        } else if (auto* frame = std::get_if<FrameMessage>(&message)) {
            const auto kind = frame->header.kind();
            const std::string name = kind == pb::FRAME_KIND_DARK   ? "dark:"
                                     : kind == pb::FRAME_KIND_FLAT ? "flat:"
                                                                   : "data:";
            log.events.push_back(name + std::to_string(frame->header.sequence()));
            log.payloads_ok = log.payloads_ok && payload_matches(*frame);
            if (kind == pb::FRAME_KIND_DATA) {
                log.data_sequences.insert(frame->header.sequence());
                log.unacked.push_back(std::move(*frame));
            }
        } else {
            ADD_FAILURE() << "unexpected " << message_type_name(message);
        }
    }
}

// Acknowledges every frame the worker holds (REDUCED) and, as analyze's receipts come back,
// relays RECEIVED for each.
void ack_all(WorkerLink& link, WorkerLog& log) {
    for (const FrameMessage& frame : log.unacked) {
        ASSERT_TRUE(
            link.ack(frame.header.run_id(), frame.header.sequence(), pb::ACK_STATUS_REDUCED));
        ASSERT_TRUE(
            link.ack(frame.header.run_id(), frame.header.sequence(), pb::ACK_STATUS_RECEIVED));
    }
    log.unacked.clear();
}

// Polls the dispatcher (and runs `step` between polls) until `done` or kPatience.
bool pump_until(
    Dispatcher& dispatcher, const std::function<bool()>& done,
    const std::function<void()>& step = [] {}) {
    const auto deadline = Clock::now() + kPatience;
    while (Clock::now() < deadline) {
        if (auto polled = dispatcher.poll(5ms); !polled) {
            ADD_FAILURE() << polled.error().message;
            return false;
        }
        step();
        if (done()) {
            return true;
        }
    }
    return false;
}

Result<void> send_frame(Dispatcher& dispatcher, const std::string& run_id, std::uint64_t sequence,
                        pb::FrameKind kind) {
    return dispatcher.dispatch(frame_header(run_id, sequence, kind),
                               make_payload(pixels_of(sequence)));
}

class DispatchTest : public ::testing::TestWithParam<const char*> {
  protected:
    void SetUp() override {
        static int counter = 0;
        const std::string transport = GetParam();
        const std::string address = transport == "inproc"
                                        ? "@inproc://dispatch-" + std::to_string(++counter)
                                        : "@tcp://127.0.0.1:*";
        DispatcherOptions options;
        options.worker_timeout = 300ms;
        auto opened = Dispatcher::open(context_, address, options);
        ASSERT_TRUE(opened) << opened.error().message;
        dispatcher_.emplace(std::move(*opened));
    }

    WorkerLink connect(const std::string& name, std::uint32_t credits) {
        WorkerLinkOptions options;
        options.heartbeat_interval = 50ms;
        auto link =
            WorkerLink::open(context_, ">" + dispatcher_->endpoint(), name, credits, options);
        EXPECT_TRUE(link) << link.error().message;
        const std::size_t before = dispatcher_->workers_alive();
        EXPECT_TRUE(
            pump_until(*dispatcher_, [&] { return dispatcher_->workers_alive() > before; }));
        return std::move(*link);
    }

    zmq::context_t context_;
    std::optional<Dispatcher> dispatcher_;
};

TEST_P(DispatchTest, CreditsBoundTheFramesAWorkerHolds) {
    Dispatcher& d = *dispatcher_;
    WorkerLink worker = connect("reduce-0", 2);
    ASSERT_TRUE(d.start_run(run_start("r1")));
    EXPECT_TRUE(d.has_credit());
    for (std::uint64_t s = 0; s < 5; ++s) {
        ASSERT_TRUE(send_frame(d, "r1", s, pb::FRAME_KIND_DATA));
    }
    EXPECT_FALSE(d.has_credit());
    EXPECT_EQ(d.in_flight(), 2U);
    EXPECT_EQ(d.waiting(), 3U);
    WorkerLog log;
    ASSERT_TRUE(pump_until(
        d, [&] { return log.data_sequences.size() == 2; }, [&] { drain_link(worker, log); }));
    // Nothing more arrives until an ack returns a credit.
    const auto until = Clock::now() + 100ms;
    pump_until(
        d, [&] { return Clock::now() > until; }, [&] { drain_link(worker, log); });
    EXPECT_EQ(log.data_sequences.size(), 2U);
    ASSERT_TRUE(worker.ack("r1", log.unacked.front().header.sequence(), pb::ACK_STATUS_REDUCED));
    ASSERT_TRUE(worker.ack("r1", log.unacked.front().header.sequence(), pb::ACK_STATUS_RECEIVED));
    log.unacked.erase(log.unacked.begin());
    ASSERT_TRUE(pump_until(
        d, [&] { return log.data_sequences.size() == 3; }, [&] { drain_link(worker, log); }));
    EXPECT_EQ(d.in_flight(), 2U);
    EXPECT_EQ(d.waiting(), 2U);
    EXPECT_FALSE(d.drained("r1"));
    ASSERT_TRUE(pump_until(
        d, [&] { return d.drained("r1"); },
        [&] {
            drain_link(worker, log);
            ack_all(worker, log);
        }));
    EXPECT_EQ(log.data_sequences, (std::multiset<std::uint64_t>{0, 1, 2, 3, 4}));
    EXPECT_EQ(log.events.front(), "start:r1");
    EXPECT_TRUE(log.payloads_ok);
    EXPECT_EQ(d.counters().frames_acked, 5U);
    EXPECT_EQ(d.counters().frames_confirmed, 5U);
    EXPECT_EQ(d.counters().acks_unexpected, 0U);
}

TEST_P(DispatchTest, EveryFrameIsAcknowledgedExactlyOnceOverTwoWorkers) {
    Dispatcher& d = *dispatcher_;
    WorkerLink a = connect("reduce-a", 3);
    WorkerLink b = connect("reduce-b", 3);
    ASSERT_TRUE(d.start_run(run_start("r2")));
    constexpr std::uint64_t kFrames = 60;
    std::uint64_t next = 0;
    WorkerLog log_a;
    WorkerLog log_b;
    ASSERT_TRUE(pump_until(
        d, [&] { return next == kFrames && d.drained("r2"); },
        [&] {
            while (next < kFrames && d.has_credit()) {
                ASSERT_TRUE(send_frame(d, "r2", next++, pb::FRAME_KIND_DATA));
            }
            drain_link(a, log_a);
            drain_link(b, log_b);
            // b acknowledges at once, a every other round: the loads differ.
            ack_all(b, log_b);
            if (next % 2 == 0) {
                ack_all(a, log_a);
            }
        }));
    std::multiset<std::uint64_t> all = log_a.data_sequences;
    all.insert(log_b.data_sequences.begin(), log_b.data_sequences.end());
    ASSERT_EQ(all.size(), kFrames);
    for (std::uint64_t s = 0; s < kFrames; ++s) {
        EXPECT_EQ(all.count(s), 1U) << "frame " << s;
    }
    EXPECT_FALSE(log_a.data_sequences.empty());
    EXPECT_FALSE(log_b.data_sequences.empty());
    EXPECT_TRUE(log_a.payloads_ok && log_b.payloads_ok);
    EXPECT_EQ(d.counters().frames_dispatched, kFrames);
    EXPECT_EQ(d.counters().frames_acked, kFrames);
    EXPECT_EQ(d.counters().frames_redispatched, 0U);
    EXPECT_EQ(d.counters().acks_unexpected, 0U);
}

TEST_P(DispatchTest, ASilentWorkersFramesGoToAnother) {
    Dispatcher& d = *dispatcher_;
    WorkerLink quiet = connect("reduce-quiet", 4);
    WorkerLink busy = connect("reduce-busy", 4);
    ASSERT_TRUE(d.start_run(run_start("r3")));
    for (std::uint64_t s = 0; s < 8; ++s) {
        ASSERT_TRUE(send_frame(d, "r3", s, pb::FRAME_KIND_DATA));
    }
    EXPECT_EQ(d.in_flight(), 8U);  // four each: least loaded first
    WorkerLog log_busy;
    // `quiet` never reads, acks or sends its heartbeat again: after worker_timeout it is dead.
    ASSERT_TRUE(pump_until(
        d, [&] { return d.drained("r3"); },
        [&] {
            drain_link(busy, log_busy);
            ack_all(busy, log_busy);
        }));
    EXPECT_EQ(d.workers_alive(), 1U);
    EXPECT_EQ(d.counters().workers_lost, 1U);
    EXPECT_EQ(d.counters().frames_redispatched, 4U);
    EXPECT_EQ(log_busy.data_sequences, (std::multiset<std::uint64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
    EXPECT_TRUE(log_busy.payloads_ok);
    // The quiet worker did receive its four frames: a late ack is ignored and counted, and so
    // is analyze's receipt of a duplicate cake.
    WorkerLog log_quiet;
    drain_link(quiet, log_quiet);
    ASSERT_EQ(log_quiet.data_sequences.size(), 4U);
    ack_all(quiet, log_quiet);
    ASSERT_TRUE(pump_until(d, [&] {
        return d.counters().acks_unexpected == 4 && d.counters().confirmations_unexpected == 4;
    }));
}

TEST_P(DispatchTest, AReducedFrameStaysUntilAnalyzeConfirmsIt) {
    Dispatcher& d = *dispatcher_;
    WorkerLink worker = connect("reduce-0", 1);
    ASSERT_TRUE(d.start_run(run_start("r7")));
    ASSERT_TRUE(send_frame(d, "r7", 0, pb::FRAME_KIND_DATA));
    EXPECT_FALSE(d.has_credit());
    WorkerLog log;
    ASSERT_TRUE(pump_until(
        d, [&] { return log.data_sequences.size() == 1; }, [&] { drain_link(worker, log); }));
    // The cake left the worker: the credit returns, the frame stays charged to the worker.
    ASSERT_TRUE(worker.ack("r7", 0, pb::ACK_STATUS_REDUCED));
    ASSERT_TRUE(pump_until(d, [&] { return d.counters().frames_acked == 1; }));
    EXPECT_TRUE(d.has_credit());
    EXPECT_FALSE(d.drained("r7"));
    EXPECT_EQ(d.in_flight(), 1U);
    EXPECT_EQ(d.unconfirmed(), 1U);
    EXPECT_EQ(d.backlog("r7").unconfirmed, 1U);
    ASSERT_EQ(d.workers().size(), 1U);
    EXPECT_EQ(d.workers().front().in_flight, 0U);
    EXPECT_EQ(d.workers().front().unconfirmed, 1U);
    // Analyze's receipt, relayed by the worker, ends it.
    ASSERT_TRUE(worker.ack("r7", 0, pb::ACK_STATUS_RECEIVED));
    ASSERT_TRUE(pump_until(d, [&] { return d.drained("r7"); }));
    EXPECT_EQ(d.in_flight(), 0U);
    EXPECT_EQ(d.counters().frames_confirmed, 1U);
}

// A stalled analyze confirms nothing: at max_unconfirmed frames awaiting its receipt the
// dispatcher has no credit, although the worker has, so ingest stops taking frames (the source
// is held back) instead of keeping ever more frames' pixels.
TEST_P(DispatchTest, FramesAwaitingAnalyzeAreBoundedByMaxUnconfirmed) {
    DispatcherOptions options;
    options.worker_timeout = 300ms;
    options.max_unconfirmed = 2;
    auto opened = Dispatcher::open(
        context_, "@inproc://dispatch-bounded-" + std::string(GetParam()), options);
    ASSERT_TRUE(opened) << opened.error().message;
    dispatcher_.emplace(std::move(*opened));
    Dispatcher& d = *dispatcher_;
    WorkerLink worker = connect("reduce-0", 4);
    ASSERT_TRUE(d.start_run(run_start("r8")));
    WorkerLog log;
    for (std::uint64_t sequence = 0; sequence < 2; ++sequence) {
        ASSERT_TRUE(d.has_credit());
        ASSERT_TRUE(send_frame(d, "r8", sequence, pb::FRAME_KIND_DATA));
    }
    ASSERT_TRUE(pump_until(
        d, [&] { return log.data_sequences.size() == 2; }, [&] { drain_link(worker, log); }));
    ASSERT_TRUE(worker.ack("r8", 0, pb::ACK_STATUS_REDUCED));
    ASSERT_TRUE(worker.ack("r8", 1, pb::ACK_STATUS_REDUCED));
    ASSERT_TRUE(pump_until(d, [&] { return d.counters().frames_acked == 2; }));
    EXPECT_EQ(d.workers().front().in_flight, 0U);  // the worker's credits are all free
    EXPECT_EQ(d.unconfirmed(), 2U);
    EXPECT_FALSE(d.has_credit());
    // One receipt: room for one more frame.
    ASSERT_TRUE(worker.ack("r8", 0, pb::ACK_STATUS_RECEIVED));
    ASSERT_TRUE(pump_until(d, [&] { return d.counters().frames_confirmed == 1; }));
    EXPECT_TRUE(d.has_credit());
}

TEST_P(DispatchTest, AWorkerLostAfterReducingHasItsUnconfirmedFramesSentAgain) {
    Dispatcher& d = *dispatcher_;
    WorkerLink dying = connect("reduce-dying", 3);
    ASSERT_TRUE(d.start_run(run_start("r8")));
    for (std::uint64_t s = 0; s < 3; ++s) {
        ASSERT_TRUE(send_frame(d, "r8", s, pb::FRAME_KIND_DATA));
    }
    WorkerLog log_dying;
    ASSERT_TRUE(pump_until(
        d, [&] { return log_dying.data_sequences.size() == 3; },
        [&] { drain_link(dying, log_dying); }));
    // All three reduced (credits back), but analyze confirmed frame 0 only: the cakes of 1 and
    // 2 were still in the dying worker's queue.
    for (std::uint64_t s = 0; s < 3; ++s) {
        ASSERT_TRUE(dying.ack("r8", s, pb::ACK_STATUS_REDUCED));
    }
    ASSERT_TRUE(dying.ack("r8", 0, pb::ACK_STATUS_RECEIVED));
    ASSERT_TRUE(pump_until(d, [&] { return d.counters().frames_confirmed == 1; }));
    EXPECT_EQ(d.unconfirmed(), 2U);
    WorkerLink survivor = connect("reduce-survivor", 3);
    WorkerLog log_survivor;
    // `dying` says nothing more: after worker_timeout it is dead.
    ASSERT_TRUE(pump_until(
        d, [&] { return d.drained("r8"); },
        [&] {
            drain_link(survivor, log_survivor);
            ack_all(survivor, log_survivor);
        }));
    EXPECT_EQ(log_survivor.data_sequences, (std::multiset<std::uint64_t>{1, 2}));
    EXPECT_EQ(log_survivor.events.front(), "start:r8");
    EXPECT_EQ(d.counters().frames_redispatched, 2U);
    EXPECT_EQ(d.counters().workers_lost, 1U);
}

TEST_P(DispatchTest, AReceiptOvertakingTheAckClosesTheFrameAndTheAckReturnsTheCredit) {
    Dispatcher& d = *dispatcher_;
    WorkerLink worker = connect("reduce-0", 1);
    ASSERT_TRUE(d.start_run(run_start("r9")));
    ASSERT_TRUE(send_frame(d, "r9", 0, pb::FRAME_KIND_DATA));
    d.confirm("r9", 0);  // a receipt that came first (another path, or reordered)
    EXPECT_TRUE(d.drained("r9"));
    EXPECT_FALSE(d.has_credit());  // the worker still holds the frame
    ASSERT_TRUE(worker.ack("r9", 0, pb::ACK_STATUS_REDUCED));
    ASSERT_TRUE(pump_until(d, [&] { return d.has_credit(); }));
    EXPECT_EQ(d.counters().acks_unexpected, 0U);
    EXPECT_EQ(d.counters().frames_redispatched, 0U);
}

TEST_P(DispatchTest, ARejectedFrameIsNotSentAgain) {
    Dispatcher& d = *dispatcher_;
    WorkerLink worker = connect("reduce-0", 1);
    ASSERT_TRUE(d.start_run(run_start("r10")));
    ASSERT_TRUE(send_frame(d, "r10", 0, pb::FRAME_KIND_DATA));
    ASSERT_TRUE(worker.ack("r10", 0, pb::ACK_STATUS_REJECTED));
    ASSERT_TRUE(pump_until(d, [&] { return d.drained("r10"); }));
    EXPECT_TRUE(d.has_credit());
    EXPECT_EQ(d.counters().frames_rejected, 1U);
}

TEST_P(DispatchTest, AWorkerBackFromSilenceIsNotPrimedTwice) {
    Dispatcher& d = *dispatcher_;
    WorkerLink slow = connect("reduce-slow", 2);
    ASSERT_TRUE(d.start_run(run_start("r12")));
    ASSERT_TRUE(send_frame(d, "r12", 0, pb::FRAME_KIND_DARK));
    ASSERT_TRUE(send_frame(d, "r12", 1, pb::FRAME_KIND_DATA));
    WorkerLog log;
    ASSERT_TRUE(pump_until(
        d, [&] { return log.data_sequences.size() == 1; }, [&] { drain_link(slow, log); }));
    // Silent past worker_timeout (a long pause, not a crash): declared dead.
    ASSERT_TRUE(pump_until(d, [&] { return d.counters().workers_lost == 1; }));
    // The same process speaks again: its frame comes back, but not the RunStart and the dark
    // it already has (it would average that dark twice).
    ASSERT_TRUE(send_frame(d, "r12", 2, pb::FRAME_KIND_DATA));
    ASSERT_TRUE(pump_until(
        d, [&] { return log.data_sequences.size() == 3; }, [&] { drain_link(slow, log); }));
    EXPECT_EQ(log.events,
              (std::vector<std::string>{"start:r12", "dark:0", "data:1", "data:1", "data:2"}));
    EXPECT_EQ(d.counters().frames_redispatched, 1U);
}

TEST_P(DispatchTest, AWorkerRestartedUnderItsNameIsPrimedAgainAndGetsItsFrames) {
    Dispatcher& d = *dispatcher_;
    std::optional<WorkerLink> first(connect("reduce-0", 2));
    ASSERT_TRUE(d.start_run(run_start("r11")));
    ASSERT_TRUE(send_frame(d, "r11", 0, pb::FRAME_KIND_DARK));
    ASSERT_TRUE(send_frame(d, "r11", 1, pb::FRAME_KIND_DATA));
    ASSERT_TRUE(send_frame(d, "r11", 2, pb::FRAME_KIND_DATA));
    WorkerLog log_first;
    ASSERT_TRUE(pump_until(
        d, [&] { return log_first.data_sequences.size() == 2; },
        [&] { drain_link(*first, log_first); }));
    ASSERT_TRUE(first->ack("r11", 1, pb::ACK_STATUS_REDUCED));
    ASSERT_TRUE(first->ack("r11", 1, pb::ACK_STATUS_RECEIVED));
    ASSERT_TRUE(pump_until(d, [&] { return d.counters().frames_confirmed == 1; }));
    const std::uint64_t old_session = first->session();
    first.reset();  // killed: no goodbye

    WorkerLinkOptions options;
    options.heartbeat_interval = 50ms;
    auto second = WorkerLink::open(context_, ">" + dispatcher_->endpoint(), "reduce-0", 2, options);
    ASSERT_TRUE(second) << second.error().message;
    EXPECT_NE(second->session(), old_session);
    WorkerLog log_second;
    ASSERT_TRUE(pump_until(
        d, [&] { return log_second.data_sequences.size() == 1; },
        [&] { drain_link(*second, log_second); }));
    EXPECT_EQ(log_second.events, (std::vector<std::string>{"start:r11", "dark:0", "data:2"}));
    EXPECT_EQ(d.counters().workers_lost, 1U);
    EXPECT_EQ(d.counters().frames_redispatched, 1U);
    EXPECT_EQ(d.workers_alive(), 1U);
}

TEST_P(DispatchTest, DarksAndFlatsReachEveryWorkerBeforeData) {
    Dispatcher& d = *dispatcher_;
    WorkerLink a = connect("reduce-a", 2);
    WorkerLink b = connect("reduce-b", 2);
    ASSERT_TRUE(d.start_run(run_start("r4")));
    ASSERT_TRUE(send_frame(d, "r4", 0, pb::FRAME_KIND_DARK));
    ASSERT_TRUE(send_frame(d, "r4", 1, pb::FRAME_KIND_DARK));
    ASSERT_TRUE(send_frame(d, "r4", 2, pb::FRAME_KIND_FLAT));
    for (std::uint64_t s = 3; s < 7; ++s) {
        ASSERT_TRUE(send_frame(d, "r4", s, pb::FRAME_KIND_DATA));
    }
    WorkerLog log_a;
    WorkerLog log_b;
    ASSERT_TRUE(pump_until(
        d, [&] { return log_a.data_sequences.size() + log_b.data_sequences.size() == 4; },
        [&] {
            drain_link(a, log_a);
            drain_link(b, log_b);
        }));
    for (const WorkerLog* log : {&log_a, &log_b}) {
        ASSERT_GE(log->events.size(), 5U);
        EXPECT_EQ(std::vector<std::string>(log->events.begin(), log->events.begin() + 4),
                  (std::vector<std::string>{"start:r4", "dark:0", "dark:1", "flat:2"}));
        EXPECT_EQ(log->data_sequences.size(), 2U);
        EXPECT_TRUE(log->payloads_ok);
    }
    // Calibration frames need no ack: only the data frames are in flight.
    EXPECT_EQ(d.in_flight(), 4U);
    EXPECT_EQ(d.counters().calibration_sends, 6U);
}

TEST_P(DispatchTest, ALateWorkerGetsRunStartAndCalibrationFirst) {
    Dispatcher& d = *dispatcher_;
    WorkerLink early = connect("reduce-early", 1);
    ASSERT_TRUE(d.start_run(run_start("r5")));
    ASSERT_TRUE(send_frame(d, "r5", 0, pb::FRAME_KIND_DARK));
    ASSERT_TRUE(send_frame(d, "r5", 1, pb::FRAME_KIND_DATA));
    ASSERT_TRUE(send_frame(d, "r5", 2, pb::FRAME_KIND_FLAT));
    ASSERT_TRUE(send_frame(d, "r5", 3, pb::FRAME_KIND_DATA));  // waits: early is full
    EXPECT_EQ(d.waiting(), 1U);
    WorkerLink late = connect("reduce-late", 1);  // its credit takes frame 3
    WorkerLog log_early;
    WorkerLog log_late;
    ASSERT_TRUE(pump_until(
        d, [&] { return log_late.data_sequences.size() == 1; },
        [&] { drain_link(late, log_late); }));
    drain_link(early, log_early);
    EXPECT_EQ(log_early.events,
              (std::vector<std::string>{"start:r5", "dark:0", "data:1", "flat:2"}));
    EXPECT_EQ(log_late.events,
              (std::vector<std::string>{"start:r5", "dark:0", "flat:2", "data:3"}));
    EXPECT_TRUE(log_early.payloads_ok && log_late.payloads_ok);
}

TEST_P(DispatchTest, EndRunForgetsItsFrames) {
    Dispatcher& d = *dispatcher_;
    WorkerLink worker = connect("reduce-0", 1);
    ASSERT_TRUE(d.start_run(run_start("r6")));
    ASSERT_TRUE(send_frame(d, "r6", 0, pb::FRAME_KIND_DATA));
    ASSERT_TRUE(send_frame(d, "r6", 1, pb::FRAME_KIND_DATA));
    EXPECT_FALSE(d.drained("r6"));
    EXPECT_TRUE(d.drained("other"));
    const Dispatcher::RunBacklog left = d.backlog("r6");
    EXPECT_EQ(left.at_worker, 1U);
    EXPECT_EQ(left.waiting, 1U);
    EXPECT_EQ(left.unconfirmed, 0U);
    d.end_run("r6");
    EXPECT_TRUE(d.drained("r6"));
    EXPECT_EQ(d.in_flight(), 0U);
    EXPECT_EQ(d.waiting(), 0U);
    EXPECT_FALSE(send_frame(d, "r6", 2, pb::FRAME_KIND_DATA));  // an unknown run is refused
}

INSTANTIATE_TEST_SUITE_P(Transports, DispatchTest, ::testing::Values("inproc", "tcp"),
                         [](const ::testing::TestParamInfo<const char*>& param) {
                             return std::string(param.param);
                         });

TEST(DispatchMessages, CreditAndAckRoundTripAndEmptyNamesAreRejected) {
    pb::WorkerCredit credit;
    credit.set_instance("reduce-7");
    credit.set_credits(9);
    auto parts = encode_control(credit);
    ASSERT_TRUE(parts);
    auto decoded = decode(std::move(*parts));
    ASSERT_TRUE(decoded);
    ASSERT_TRUE(std::holds_alternative<WorkerCreditMessage>(*decoded));
    EXPECT_EQ(std::get<WorkerCreditMessage>(*decoded).credit.credits(), 9U);
    EXPECT_EQ(message_type_name(*decoded), "WorkerCredit");

    pb::FrameAck ack;
    ack.set_run_id("r");
    ack.set_sequence(41);
    ack.set_status(pb::ACK_STATUS_RECEIVED);
    auto ack_parts = encode_control(ack);
    ASSERT_TRUE(ack_parts);
    auto ack_decoded = decode(std::move(*ack_parts));
    ASSERT_TRUE(ack_decoded);
    EXPECT_EQ(std::get<FrameAckMessage>(*ack_decoded).ack.sequence(), 41U);
    EXPECT_EQ(std::get<FrameAckMessage>(*ack_decoded).ack.status(), pb::ACK_STATUS_RECEIVED);

    EXPECT_FALSE(encode_control(pb::WorkerCredit{}));
    EXPECT_FALSE(encode_control(pb::FrameAck{}));
}

}  // namespace
}  // namespace anisoflow::transport
