#include "anisoflow/transport/archive_receipts.hpp"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>

#include <fmt/format.h>

#include "anisoflow/transport/socket.hpp"

namespace anisoflow::transport {

namespace {

// Whether `sequence` is in one of `ranges`, which archive sends sorted and disjoint.
bool in_ranges(const google::protobuf::RepeatedPtrField<pb::SequenceRange>& ranges,
               std::uint64_t sequence) {
    const auto after = std::upper_bound(
        ranges.begin(), ranges.end(), sequence,
        [](std::uint64_t s, const pb::SequenceRange& range) { return s < range.first(); });
    return after != ranges.begin() && std::prev(after)->last() >= sequence;
}

}  // namespace

void append_ranges(const SeenSequences& sequences,
                   google::protobuf::RepeatedPtrField<pb::SequenceRange>& ranges) {
    sequences.for_each_range([&](std::uint64_t first, std::uint64_t last) {
        pb::SequenceRange* range = ranges.Add();
        range->set_first(first);
        range->set_last(last);
    });
}

Multipart share(Multipart& parts) {
    Multipart shared(parts.size());
    for (std::size_t i = 0; i < parts.size(); ++i) {
        shared[i].copy(parts[i]);  // zmq_msg_copy: a reference to the same bytes
    }
    return shared;
}

bool UnreceiptedMessages::keep(Multipart parts) {
    if (parts.empty()) {
        return false;
    }
    // Part 0 again rather than a key from the caller: every sender keeps messages alike, and a
    // header parse is microseconds against the milliseconds of a frame.
    pb::Envelope envelope;
    if (!envelope.ParseFromArray(parts.front().data(), static_cast<int>(parts.front().size()))) {
        return false;
    }
    Kept kept;
    switch (envelope.body_case()) {
        case pb::Envelope::kRunStart:
            kept.kind = Kind::kRunStart;
            kept.run_id = envelope.run_start().run_id();
            break;
        case pb::Envelope::kFrameHeader:
            kept.kind = Kind::kFrame;
            kept.run_id = envelope.frame_header().run_id();
            kept.sequence = envelope.frame_header().sequence();
            break;
        case pb::Envelope::kReducedFrame:
            kept.kind = Kind::kFrame;
            kept.run_id = envelope.reduced_frame().run_id();
            kept.sequence = envelope.reduced_frame().sequence();
            break;
        case pb::Envelope::kAnalysisResult: {
            const pb::AnalysisResult& result = envelope.analysis_result();
            kept.kind = Kind::kResult;
            kept.run_id = result.run_id();
            kept.frames_p = result.n_frames_p();
            kept.frames_n = result.n_frames_n();
            kept.is_final = result.is_final();
            // The newer result supersedes the older: only the run's latest must reach the file.
            std::erase_if(kept_, [&](const Kept& k) {
                return k.kind == Kind::kResult && k.run_id == kept.run_id;
            });
            break;
        }
        case pb::Envelope::kRunEnd:
            kept.kind = Kind::kRunEnd;
            kept.run_id = envelope.run_end().run_id();
            break;
        default:
            return false;  // heartbeats, run events: not needed again
    }
    kept.parts = std::move(parts);
    if (kept.kind == Kind::kFrame) {
        ++frames_;
    }
    kept_.push_back(std::move(kept));
    return true;
}

bool UnreceiptedMessages::covered(const Kept& kept, const pb::RunReceipt& run) const {
    if (run.finished()) {
        return true;
    }
    switch (kept.kind) {
        case Kind::kRunStart:
            return true;  // listed at all: the file exists
        case Kind::kFrame:
            // Stored, or refused for good (sending it again would be refused again).
            return feed_ == ReceiptFeed::kRawFrames
                       ? in_ranges(run.raw(), kept.sequence) ||
                             in_ranges(run.raw_refused(), kept.sequence)
                       : in_ranges(run.cakes(), kept.sequence) ||
                             in_ranges(run.cakes_refused(), kept.sequence);
        case Kind::kResult:
            return run.has_result() && run.result_frames_p() == kept.frames_p &&
                   run.result_frames_n() == kept.frames_n && run.result_final() == kept.is_final;
        case Kind::kRunEnd:
            return false;  // only a finished run's
    }
    return false;
}

UnreceiptedMessages::Applied UnreceiptedMessages::apply(const pb::ArchiveReceipts& receipts) {
    Applied applied;
    applied.new_session = session_ != receipts.session();
    session_ = receipts.session();
    if (kept_.empty()) {
        return applied;
    }
    std::unordered_map<std::string_view, const pb::RunReceipt*> runs;
    for (const pb::RunReceipt& run : receipts.runs()) {
        runs.emplace(run.run_id(), &run);
    }
    applied.forgotten = std::erase_if(kept_, [&](const Kept& kept) {
        const auto run = runs.find(kept.run_id);
        if (run == runs.end() || !covered(kept, *run->second)) {
            return false;
        }
        if (kept.kind == Kind::kFrame) {
            --frames_;
        }
        return true;
    });
    return applied;
}

std::deque<Multipart> UnreceiptedMessages::take_all() {
    std::deque<Multipart> all;
    for (Kept& kept : kept_) {
        all.push_back(std::move(kept.parts));
    }
    kept_.clear();
    frames_ = 0;
    return all;
}

ReceiptsTaken take_receipts(zmq::socket_t& socket, UnreceiptedMessages& kept,
                            std::deque<Multipart>& to_send, const ReceiptRefused& refused,
                            int max_messages) {
    ReceiptsTaken taken;
    for (int i = 0; i < max_messages; ++i) {
        auto received = receive(socket, std::chrono::milliseconds{0});
        if (!received) {
            taken.error = received.error();
            break;
        }
        if (!*received) {
            break;
        }
        taken.bytes += size_of(**received);
        auto decoded = decode(std::move(**received));
        if (!decoded) {
            refused(to_string(decoded.error().reason), decoded.error().error.message);
            continue;
        }
        const auto* message = std::get_if<ArchiveReceiptsMessage>(&*decoded);
        if (message == nullptr) {
            refused("unexpected_body",
                    fmt::format("a {} on the receipts socket", message_type_name(*decoded)));
            continue;
        }
        const UnreceiptedMessages::Applied applied = kept.apply(message->receipts);
        if (!applied.new_session) {
            continue;
        }
        ++taken.new_sessions;
        taken.new_session = message->receipts.session();
        std::deque<Multipart> again = kept.take_all();
        taken.sent_again += again.size();
        to_send.insert(to_send.begin(), std::make_move_iterator(again.begin()),
                       std::make_move_iterator(again.end()));
    }
    return taken;
}

}  // namespace anisoflow::transport
