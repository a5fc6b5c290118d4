#pragma once
// Archive receipts (docs/protocol.md, "Archive receipts"; docs/adr/0008-archive-receipts.md).
// A message a sender hands to ZeroMQ for archive is not stored yet: it may sit in a socket queue
// or in archive's memory when archive is killed. Archive publishes what its run files hold for
// good (ArchiveReceipts, after each append's flush); a sender keeps each message until a receipt
// covers it and, when a new archive process appears, sends again everything still kept. Archive
// skips what it already has, so sending again is always safe.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <zmq.hpp>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/core/result.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/seen_sequences.hpp"

namespace anisoflow::transport {

/// Which of a RunReceipt's ranges covers the frames a sender keeps.
enum class ReceiptFeed {
    kRawFrames,    ///< ingest's raw frame feed: FrameHeaders, covered by RunReceipt.raw
    kArchiveFeed,  ///< analyze's archive feed: ReducedFrames, covered by RunReceipt.cakes
};

/// Appends `sequences` to `ranges` as RunReceipt ranges, one per run of consecutive sequences.
void append_ranges(const SeenSequences& sequences,
                   google::protobuf::RepeatedPtrField<pb::SequenceRange>& ranges);

/// Another reference to every part of `parts` (zmq_msg_copy, which counts the reference in
/// `parts`, hence not const): the bytes are shared, not copied.
[[nodiscard]] Multipart share(Multipart& parts);

/// The messages a sender sent to archive that no receipt covers yet, oldest first. Not
/// thread-safe: one sender's loop owns it.
class UnreceiptedMessages {
  public:
    explicit UnreceiptedMessages(ReceiptFeed feed) : feed_(feed) {}

    /// Keeps a message just sent to archive until a receipt covers it: pass share(parts) taken
    /// before the send (a send empties the parts). A run's older results are forgotten when a
    /// newer one is kept (each result holds everything the older ones did). Heartbeats and run
    /// events are not kept: archive needs neither again (RunEnd carries the whole run log).
    /// False for a message it does not keep.
    bool keep(Multipart parts);

    struct Applied {
        /// Archive restarted since the last receipts, or these are the first: what is kept may
        /// have died with the old process, so take_all() and send it again.
        bool new_session = false;
        std::size_t forgotten = 0;  ///< messages the receipts covered
    };

    /// Forgets every message `receipts` covers: a frame or cake whose sequence a range of its run
    /// holds (stored, or refused for good), a RunStart of a run listed at all, a result matching
    /// the run's last stored one, and anything of a run archive finished (closed or refused).
    Applied apply(const pb::ArchiveReceipts& receipts);

    /// Everything kept, oldest first, to be sent again (and kept again as it is sent).
    [[nodiscard]] std::deque<Multipart> take_all();

    [[nodiscard]] std::size_t size() const { return kept_.size(); }
    /// Frames (raw feed) or cakes (archive feed) among them.
    [[nodiscard]] std::size_t frames() const { return frames_; }
    /// The archive process the last receipts came from; nullopt before the first.
    [[nodiscard]] std::optional<std::uint64_t> session() const { return session_; }

  private:
    enum class Kind { kRunStart, kFrame, kResult, kRunEnd };
    struct Kept {
        Multipart parts;
        std::string run_id;
        Kind kind = Kind::kFrame;
        std::uint64_t sequence = 0;  // kFrame
        std::uint64_t frames_p = 0;  // kResult: AnalysisResult.n_frames_p
        std::uint64_t frames_n = 0;  // kResult: AnalysisResult.n_frames_n
        bool is_final = false;       // kResult
    };

    [[nodiscard]] bool covered(const Kept& kept, const pb::RunReceipt& run) const;

    ReceiptFeed feed_;
    std::deque<Kept> kept_;
    std::size_t frames_ = 0;
    std::optional<std::uint64_t> session_;
};

/// What take_receipts() read, also when the socket failed part way.
struct ReceiptsTaken {
    std::uint64_t bytes = 0;         ///< of every message read, refused ones included
    std::uint64_t new_sessions = 0;  ///< receipts from an archive process not seen before
    std::size_t sent_again = 0;      ///< kept messages queued to go again (a new session)
    std::uint64_t new_session = 0;   ///< the last new archive process (0: none came)
    std::optional<Error> error;      ///< the socket failed: the rest waits for the next call
};

/// Called for a message on the receipts socket that is not an ArchiveReceipts: `reason` is a
/// RejectReason's label, or "unexpected_body" for a valid message of another type.
using ReceiptRefused = std::function<void(std::string_view reason, std::string_view error)>;

/// The receiving side of archive receipts, as analyze and ingest run it: reads what waits on
/// `socket` (at most `max_messages`, without waiting) and applies each ArchiveReceipts to
/// `kept`. Receipts from a new archive process put everything still kept at the front of
/// `to_send`, oldest first: it may have died with the old process, and nothing newer may
/// overtake it. A failing socket ends the call, with what was done before in the answer.
[[nodiscard]] ReceiptsTaken take_receipts(zmq::socket_t& socket, UnreceiptedMessages& kept,
                                          std::deque<Multipart>& to_send,
                                          const ReceiptRefused& refused, int max_messages = 64);

}  // namespace anisoflow::transport
