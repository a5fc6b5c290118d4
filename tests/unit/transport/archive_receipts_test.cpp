#include "anisoflow/transport/archive_receipts.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "anisoflow/transport/payload.hpp"
#include "anisoflow/transport/socket.hpp"

#include "sample_messages.hpp"

namespace anisoflow::transport {
namespace {

Multipart cake(std::uint64_t sequence) {
    pb::ReducedFrame header = sample::reduced_header(8, 4);
    header.set_sequence(sequence);
    auto encoded = encode_reduced(header, sample::cake_parts(header));
    EXPECT_TRUE(encoded.has_value());
    return std::move(*encoded);
}

Multipart raw_frame(std::uint64_t sequence) {
    const pb::FrameHeader header = sample::frame_header(16, 16, pb::PIXEL_DTYPE_UINT16, sequence);
    auto encoded = encode_frame(header, make_payload(sample::values<std::uint16_t>(256, sequence)));
    EXPECT_TRUE(encoded.has_value());
    return std::move(*encoded);
}

Multipart result(std::uint64_t frames_p, std::uint64_t frames_n, bool is_final) {
    pb::AnalysisResult header = sample::result_header(16, 16);
    header.set_n_frames_p(frames_p);
    header.set_n_frames_n(frames_n);
    header.set_is_final(is_final);
    auto encoded = encode_result(header, sample::curve_parts(header));
    EXPECT_TRUE(encoded.has_value());
    return std::move(*encoded);
}

template <class Body>
Multipart control(const Body& body) {
    auto encoded = encode_control(body);
    EXPECT_TRUE(encoded.has_value());
    return std::move(*encoded);
}

pb::ArchiveReceipts receipts(std::uint64_t session) {
    pb::ArchiveReceipts out;
    out.set_session(session);
    return out;
}

pb::RunReceipt& run_receipt(pb::ArchiveReceipts& receipts) {
    pb::RunReceipt& run = *receipts.add_runs();
    run.set_run_id(sample::kRunId);
    return run;
}

void add_range(google::protobuf::RepeatedPtrField<pb::SequenceRange>& ranges, std::uint64_t first,
               std::uint64_t last) {
    pb::SequenceRange& range = *ranges.Add();
    range.set_first(first);
    range.set_last(last);
}

// Which kept message is which, in order: decoded, named by type and sequence.
std::vector<std::string> names(std::deque<Multipart> all) {
    std::vector<std::string> out;
    for (Multipart& parts : all) {
        auto decoded = decode(std::move(parts));
        EXPECT_TRUE(decoded.has_value());
        if (!decoded) {
            continue;
        }
        std::string name(message_type_name(*decoded));
        if (const auto* c = std::get_if<ReducedMessage>(&*decoded)) {
            name += " " + std::to_string(c->header.sequence());
        } else if (const auto* f = std::get_if<FrameMessage>(&*decoded)) {
            name += " " + std::to_string(f->header.sequence());
        } else if (const auto* r = std::get_if<ResultMessage>(&*decoded)) {
            name += " " + std::to_string(r->header.n_frames_p());
        }
        out.push_back(name);
    }
    return out;
}

TEST(UnreceiptedMessages, KeepsWhatNoReceiptCoversAndForgetsWhatOneDoes) {
    UnreceiptedMessages kept(ReceiptFeed::kArchiveFeed);
    EXPECT_TRUE(kept.keep(control(sample::run_start())));
    for (std::uint64_t s = 0; s < 6; ++s) {
        EXPECT_TRUE(kept.keep(cake(s)));
    }
    EXPECT_FALSE(kept.keep(control(sample::heartbeat())));  // never needed again
    EXPECT_EQ(kept.size(), 7U);
    EXPECT_EQ(kept.frames(), 6U);

    pb::ArchiveReceipts first = receipts(41);
    pb::RunReceipt& run = run_receipt(first);
    add_range(*run.mutable_cakes(), 0, 1);
    add_range(*run.mutable_cakes(), 3, 3);
    add_range(*run.mutable_raw(), 0, 5);  // the raw feed's: not this sender's frames
    const auto applied = kept.apply(first);
    EXPECT_TRUE(applied.new_session);  // the first receipts: anything kept may be lost
    EXPECT_EQ(applied.forgotten, 4U);  // the RunStart (the file exists), cakes 0, 1 and 3
    EXPECT_EQ(kept.session(), 41U);
    EXPECT_EQ(kept.frames(), 3U);
    EXPECT_EQ(names(kept.take_all()),
              (std::vector<std::string>{"ReducedFrame 2", "ReducedFrame 4", "ReducedFrame 5"}));
    EXPECT_EQ(kept.size(), 0U);
    EXPECT_EQ(kept.frames(), 0U);
}

TEST(UnreceiptedMessages, SaysWhenArchiveRestartedAndGivesBackEverythingInOrder) {
    UnreceiptedMessages kept(ReceiptFeed::kRawFrames);
    EXPECT_TRUE(kept.apply(receipts(7)).new_session);  // the first: nothing kept yet
    EXPECT_TRUE(kept.keep(control(sample::run_start())));
    for (std::uint64_t s = 0; s < 4; ++s) {
        EXPECT_TRUE(kept.keep(raw_frame(s)));
    }
    EXPECT_TRUE(kept.keep(control(sample::run_end())));
    // The same archive, nothing stored yet: nothing to send again.
    EXPECT_FALSE(kept.apply(receipts(7)).new_session);
    pb::ArchiveReceipts same = receipts(7);
    add_range(*run_receipt(same).mutable_raw(), 0, 0);
    EXPECT_EQ(kept.apply(same).forgotten, 2U);  // RunStart, frame 0
    // A restarted archive: the rest goes again, oldest first, and RunEnd last.
    const auto restarted = kept.apply(receipts(8));
    EXPECT_TRUE(restarted.new_session);
    EXPECT_EQ(restarted.forgotten, 0U);
    EXPECT_EQ(names(kept.take_all()), (std::vector<std::string>{"FrameHeader 1", "FrameHeader 2",
                                                                "FrameHeader 3", "RunEnd"}));
}

TEST(UnreceiptedMessages, KeepsOnlyTheNewestResultUntilTheFileHoldsIt) {
    UnreceiptedMessages kept(ReceiptFeed::kArchiveFeed);
    EXPECT_TRUE(kept.keep(result(3, 2, false)));
    EXPECT_TRUE(kept.keep(cake(9)));
    EXPECT_TRUE(kept.keep(result(5, 4, false)));  // holds all the first did
    EXPECT_EQ(kept.size(), 2U);

    pb::ArchiveReceipts older = receipts(1);
    pb::RunReceipt& run = run_receipt(older);
    run.set_has_result(true);
    run.set_result_frames_p(3);
    run.set_result_frames_n(2);
    EXPECT_EQ(kept.apply(older).forgotten, 0U);  // the file's last result is not the newest

    pb::ArchiveReceipts newest = receipts(1);
    pb::RunReceipt& stored = run_receipt(newest);
    stored.set_has_result(true);
    stored.set_result_frames_p(5);
    stored.set_result_frames_n(4);
    stored.set_result_final(true);  // a final one of the same frames is another result
    EXPECT_EQ(kept.apply(newest).forgotten, 0U);
    stored.set_result_final(false);
    EXPECT_EQ(kept.apply(newest).forgotten, 1U);
    EXPECT_EQ(names(kept.take_all()), (std::vector<std::string>{"ReducedFrame 9"}));
}

TEST(UnreceiptedMessages, ForgetsEverythingOfARunArchiveFinishedAndOnlyThen) {
    UnreceiptedMessages kept(ReceiptFeed::kArchiveFeed);
    EXPECT_TRUE(kept.keep(cake(1)));
    EXPECT_TRUE(kept.keep(control(sample::run_end())));
    pb::ArchiveReceipts open = receipts(3);
    add_range(*run_receipt(open).mutable_cakes(), 0, 10);
    EXPECT_EQ(kept.apply(open).forgotten, 1U);  // the cake; RunEnd waits for the file to close
    pb::ArchiveReceipts other = receipts(3);
    pb::RunReceipt& another = *other.add_runs();
    another.set_run_id("another-run");
    another.set_finished(true);
    EXPECT_EQ(kept.apply(other).forgotten, 0U);
    pb::ArchiveReceipts closed = receipts(3);
    run_receipt(closed).set_finished(true);
    EXPECT_EQ(kept.apply(closed).forgotten, 1U);
    EXPECT_EQ(kept.size(), 0U);
}

TEST(UnreceiptedMessages, ForgetsWhatArchiveRefusedForGood) {
    UnreceiptedMessages raw(ReceiptFeed::kRawFrames);
    UnreceiptedMessages cakes(ReceiptFeed::kArchiveFeed);
    EXPECT_TRUE(raw.keep(raw_frame(4)));
    EXPECT_TRUE(cakes.keep(cake(4)));
    pb::ArchiveReceipts refused_raw = receipts(2);
    add_range(*run_receipt(refused_raw).mutable_raw_refused(), 4, 4);
    EXPECT_EQ(cakes.apply(refused_raw).forgotten, 0U) << "a refused raw frame is not the cake";
    EXPECT_EQ(raw.apply(refused_raw).forgotten, 1U);
    pb::ArchiveReceipts refused_cake = receipts(2);
    add_range(*run_receipt(refused_cake).mutable_cakes_refused(), 4, 4);
    EXPECT_EQ(cakes.apply(refused_cake).forgotten, 1U);
    EXPECT_EQ(raw.frames() + cakes.frames(), 0U);
}

TEST(UnreceiptedMessages, SharesThePayloadsItKeepsInsteadOfCopyingThem) {
    UnreceiptedMessages kept(ReceiptFeed::kRawFrames);
    Multipart sent = raw_frame(0);
    ASSERT_TRUE(kept.keep(share(sent)));
    std::deque<Multipart> back = kept.take_all();
    ASSERT_EQ(back.size(), 1U);
    ASSERT_EQ(back.front().size(), sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
        EXPECT_EQ(back.front()[i], sent[i]);  // the same bytes
    }
    // A large payload (above ZeroMQ's small-message size) is one buffer, referenced twice.
    EXPECT_EQ(back.front()[1].data(), sent[1].data());
}

// The receiving loop analyze and ingest share, through a real inproc pipe: what is not a receipt
// is refused with its reason, and a new archive session puts everything kept ahead of what waits.
TEST(TakeReceipts, AppliesReceiptsRefusesTheRestAndQueuesWhatANewArchiveMayLack) {
    zmq::context_t context;
    auto in = open_socket(context, zmq::socket_type::pull, "@inproc://take-receipts");
    ASSERT_TRUE(in.has_value()) << in.error().message;
    auto out = open_socket(context, zmq::socket_type::push, ">inproc://take-receipts");
    ASSERT_TRUE(out.has_value()) << out.error().message;
    const auto push = [&](Multipart parts) {
        ASSERT_TRUE(send(*out, parts, std::chrono::seconds(5)).value_or(false));
    };

    UnreceiptedMessages kept(ReceiptFeed::kRawFrames);
    EXPECT_TRUE(kept.keep(control(sample::run_start())));
    for (std::uint64_t s = 0; s < 3; ++s) {
        EXPECT_TRUE(kept.keep(raw_frame(s)));
    }
    std::deque<Multipart> to_send;
    to_send.push_back(raw_frame(3));  // not sent yet: goes after what is sent again

    Multipart garbage;
    garbage.emplace_back(std::string_view("not an envelope"));
    push(std::move(garbage));
    push(control(sample::heartbeat()));
    pb::ArchiveReceipts first = receipts(5);
    add_range(*run_receipt(first).mutable_raw(), 0, 0);
    push(control(first));
    pb::ArchiveReceipts second = receipts(5);
    add_range(*run_receipt(second).mutable_raw(), 0, 1);
    push(control(second));

    std::vector<std::string> refused;
    const ReceiptsTaken taken =
        take_receipts(*in, kept, to_send, [&](std::string_view reason, std::string_view error) {
            EXPECT_FALSE(error.empty());
            refused.emplace_back(reason);
        });
    ASSERT_FALSE(taken.error.has_value()) << taken.error->message;
    EXPECT_EQ(refused, (std::vector<std::string>{"malformed_header", "unexpected_body"}));
    EXPECT_GT(taken.bytes, 0U);
    EXPECT_EQ(taken.new_sessions, 1U);  // the first receipts; the second are of the same archive
    EXPECT_EQ(taken.sent_again, 2U);    // frames 1 and 2 (frame 0 stored, the run listed)
    EXPECT_EQ(taken.new_session, 5U);
    EXPECT_EQ(kept.size(), 0U);  // all taken to be sent again, kept again as they go
    EXPECT_EQ(names(std::move(to_send)),
              (std::vector<std::string>{"FrameHeader 1", "FrameHeader 2", "FrameHeader 3"}));

    // Nothing waiting: nothing read, nothing refused.
    const ReceiptsTaken idle = take_receipts(
        *in, kept, to_send,
        [&](std::string_view, std::string_view) { ADD_FAILURE() << "refused with nothing sent"; });
    EXPECT_FALSE(idle.error.has_value());
    EXPECT_EQ(idle.bytes, 0U);
    EXPECT_EQ(idle.new_session, 0U);
}

TEST(AppendRanges, GivesOneRangePerRunOfConsecutiveSequences) {
    SeenSequences seen;
    for (const std::uint64_t s : {0, 1, 2, 5, 7, 8}) {
        seen.insert(s);
    }
    google::protobuf::RepeatedPtrField<pb::SequenceRange> ranges;
    append_ranges(seen, ranges);
    ASSERT_EQ(ranges.size(), 3);
    EXPECT_EQ(ranges[0].first(), 0U);
    EXPECT_EQ(ranges[0].last(), 2U);
    EXPECT_EQ(ranges[1].first(), 5U);
    EXPECT_EQ(ranges[1].last(), 5U);
    EXPECT_EQ(ranges[2].first(), 7U);
    EXPECT_EQ(ranges[2].last(), 8U);
}

}  // namespace
}  // namespace anisoflow::transport
