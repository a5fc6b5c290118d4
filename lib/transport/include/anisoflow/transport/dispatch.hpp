#pragma once
// Acknowledged dispatch of frames to reduce workers (docs/protocol.md, "Acknowledged dispatch to
// reducers", docs/adr/0005-delivery-confirmed-by-analyze.md). Dispatcher is ingest's side (a
// ROUTER): worker credits, each run's RunStart and dark/flat frames sent to a worker before its
// first frame of the run, data frames to the least loaded worker with credit, and a table that
// keeps every data frame until analyze has its ReducedFrame (FrameAck RECEIVED, relayed by a
// worker): a worker's FrameAck REDUCED only returns the credit, so a worker that dies with cakes
// still in its queues has them dispatched again. WorkerLink is a reduce worker's side (a DEALER
// named after the worker's instance).

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "anisoflow/core/result.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/socket.hpp"

namespace anisoflow::transport {

struct DispatcherOptions {
    /// A worker silent this long (no ack, no credit heartbeat) is declared dead and its frames
    /// in flight are dispatched again to the others.
    std::chrono::milliseconds worker_timeout{5000};
    /// Messages queued per worker pipe. Data frames are bounded by credits; dark and flat frames
    /// are not, so this must hold a run's calibration frames plus the credits. A worker whose
    /// pipe is full is treated as dead.
    int send_hwm = 10000;
    int receive_hwm = 10000;
    /// Frames reduced and awaiting analyze's receipt, kept with their pixels: at this many
    /// has_credit() is false, so the caller takes no new frame (a stalled analyze holds the
    /// source back instead of growing this table). 0: no limit.
    std::size_t max_unconfirmed = 0;
    std::optional<CurveSocketKeys> curve;  ///< docs/security.md; none: plain
};

/// Counts since the Dispatcher was opened (the ingest service exports them as metrics).
struct DispatchCounters {
    std::uint64_t frames_dispatched = 0;    ///< frames handed to a worker for the first time
    std::uint64_t frames_redispatched = 0;  ///< frames sent again after their worker was lost
    /// FrameAcks REDUCED or REJECTED that returned a worker's credit.
    std::uint64_t frames_acked = 0;
    std::uint64_t frames_rejected = 0;   ///< of those, REJECTED: the frame is not sent again
    std::uint64_t frames_confirmed = 0;  ///< FrameAcks RECEIVED that closed a frame's entry
    /// FrameAcks RECEIVED of frames no longer tracked (a duplicate cake after re-dispatch, a run
    /// already ended): ignored.
    std::uint64_t confirmations_unexpected = 0;
    std::uint64_t calibration_sends = 0;  ///< dark/flat frames sent, one per worker and frame
    /// Worker FrameAcks of frames that worker does not hold (a late ack after re-dispatch, a
    /// duplicate, a dark or flat frame acknowledged): ignored.
    std::uint64_t acks_unexpected = 0;
    std::uint64_t workers_joined = 0;  ///< workers that announced credits (again)
    std::uint64_t workers_lost = 0;    ///< workers declared dead (silent, unreachable, restarted)
    std::uint64_t messages_rejected = 0;  ///< undecodable or unexpected messages from workers
    std::uint64_t bytes_sent = 0;         ///< every part of every message accepted by the socket
    std::uint64_t bytes_received = 0;     ///< every part of every message from the workers
};

/// One live worker, for logs, metrics and tests.
struct WorkerInfo {
    std::string instance;       ///< its routing id (WorkerCredit.instance)
    std::uint32_t credits = 0;  ///< frames it may hold, as last announced
    std::size_t in_flight = 0;  ///< frames sent and not yet acknowledged (credits in use)
    /// Frames it reduced whose receipt by analyze is not confirmed yet: sent again if it dies.
    std::size_t unconfirmed = 0;
};

/// Ingest's side of the frames socket. Single-threaded: one thread calls everything.
class Dispatcher {
  public:
    /// A ROUTER bound (or connected) at `address` ("@tcp://*:5555", docs/protocol.md).
    [[nodiscard]] static Result<Dispatcher> open(zmq::context_t& context, std::string_view address,
                                                 const DispatcherOptions& options = {});
    ~Dispatcher();
    Dispatcher(Dispatcher&&) noexcept;
    Dispatcher& operator=(Dispatcher&&) noexcept;
    Dispatcher(const Dispatcher&) = delete;
    Dispatcher& operator=(const Dispatcher&) = delete;

    /// The endpoint bound or connected (for "@tcp://127.0.0.1:*" the port chosen).
    [[nodiscard]] const std::string& endpoint() const;

    /// Registers a run. Its RunStart goes to each worker, on the frames pipe, before that
    /// worker's first frame of the run. A known run id changes nothing.
    [[nodiscard]] Result<void> start_run(const pb::RunStart& start);

    /// Sends one frame of a started run. DARK and FLAT frames are kept for workers that join
    /// later and sent to every live worker now (no credit, no ack). Any other kind goes to the
    /// live worker with the most free credit and stays in the dispatcher's table until analyze
    /// confirms it (FrameAck RECEIVED); without credit (check has_credit() first) it waits
    /// inside the dispatcher and goes out from poll() once a worker has credit.
    /// Errors: an unknown run id, a frame that encode_frame() refuses.
    [[nodiscard]] Result<void> dispatch(const pb::FrameHeader& header, zmq::message_t payload);

    /// Reads the workers' messages for up to `timeout` (credits, acks, analyze's receipts),
    /// declares workers silent for worker_timeout dead and sends their unconfirmed frames again.
    [[nodiscard]] Result<void> poll(std::chrono::milliseconds timeout);

    /// Analyze has the ReducedFrame of (run_id, sequence): the frame is done. poll() calls it
    /// for every FrameAck RECEIVED a worker relays; public for receipts that come another way.
    void confirm(std::string_view run_id, std::uint64_t sequence);

    /// True when a new data frame would go out at once: the live workers' free credits exceed
    /// the frames waiting for dispatch, and fewer than max_unconfirmed frames await analyze.
    [[nodiscard]] bool has_credit() const;

    /// True when no frame of `run_id` is waiting, at a worker, or reduced but not confirmed.
    [[nodiscard]] bool drained(std::string_view run_id) const;

    /// Frames of `run_id` still tracked, by where they are (for RunEnd's detail).
    struct RunBacklog {
        std::size_t waiting = 0;      ///< never sent, or sent again and waiting for credit
        std::size_t at_worker = 0;    ///< at a worker that has not acknowledged them
        std::size_t unconfirmed = 0;  ///< reduced, not yet confirmed by analyze
    };
    [[nodiscard]] RunBacklog backlog(std::string_view run_id) const;

    /// Forgets a run: its RunStart and calibration cache, and any of its frames still tracked
    /// (call it once drained() or a drain timeout passed).
    void end_run(std::string_view run_id);

    [[nodiscard]] std::size_t workers_alive() const;
    /// Data frames sent to a worker and not yet confirmed by analyze (acknowledged or not).
    [[nodiscard]] std::size_t in_flight() const;
    [[nodiscard]] std::size_t unconfirmed() const;  ///< of those, reduced and awaiting analyze
    [[nodiscard]] std::size_t waiting() const;      ///< data frames waiting for a worker
    [[nodiscard]] std::vector<WorkerInfo> workers() const;
    [[nodiscard]] const DispatchCounters& counters() const;

  private:
    struct State;
    explicit Dispatcher(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

struct WorkerLinkOptions {
    /// WorkerCredit is repeated this often as the worker's heartbeat (from receive()); keep it
    /// well below the dispatcher's worker_timeout.
    std::chrono::milliseconds heartbeat_interval{1000};
    /// How long ack() and announce() wait when the DEALER's queue is full (ingest gone or far
    /// behind); then the message is dropped and counted (control_dropped()).
    std::chrono::milliseconds send_timeout{5000};
    int send_hwm = 1000;
    int receive_hwm = 1000;
    std::optional<CurveSocketKeys> curve;  ///< docs/security.md; none: plain
};

/// A reduce worker's side of the frames socket: a DEALER whose routing id is `instance`.
class WorkerLink {
  public:
    /// Connects (">tcp://ingest:5555") and announces `credits` at once.
    [[nodiscard]] static Result<WorkerLink> open(zmq::context_t& context, std::string_view address,
                                                 std::string instance, std::uint32_t credits,
                                                 const WorkerLinkOptions& options = {});
    WorkerLink(WorkerLink&&) noexcept = default;
    WorkerLink& operator=(WorkerLink&&) noexcept = default;
    WorkerLink(const WorkerLink&) = delete;
    WorkerLink& operator=(const WorkerLink&) = delete;
    ~WorkerLink() = default;

    /// Sends WorkerCredit{instance, credits} now.
    [[nodiscard]] Result<void> announce();
    /// Changes the announced queue capacity (sent at once).
    [[nodiscard]] Result<void> set_credits(std::uint32_t credits);

    /// One message from ingest (a RunStartMessage or a FrameMessage), or the Rejection of a
    /// malformed one, waiting up to `timeout`; nullopt when none came. Sends the credit
    /// heartbeat whenever it is due.
    [[nodiscard]] Result<std::optional<DecodeResult>> receive(std::chrono::milliseconds timeout);

    /// Acknowledges a frame: REDUCED once its ReducedFrame was handed to the reduced socket,
    /// REJECTED when no worker can reduce it (both return its credit), RECEIVED to relay
    /// analyze's receipt of the frame's ReducedFrame. An ack ingest does not take within
    /// send_timeout is dropped and counted, not an error: ingest is gone (killed, restarting)
    /// or far behind, and the worker must outlive it; a lost ack costs at worst a counted
    /// duplicate when ingest dispatches the frame again (docs/protocol.md).
    [[nodiscard]] Result<void> ack(std::string_view run_id, std::uint64_t sequence,
                                   pb::AckStatus status);

    [[nodiscard]] const std::string& instance() const { return instance_; }
    [[nodiscard]] std::uint32_t credits() const { return credits_; }
    /// Drawn at open(): tells ingest this process from an earlier one of the same name.
    [[nodiscard]] std::uint64_t session() const { return session_; }
    /// Every part of every message received from, and accepted for, ingest so far.
    [[nodiscard]] std::uint64_t bytes_received() const { return bytes_received_; }
    [[nodiscard]] std::uint64_t bytes_sent() const { return bytes_sent_; }
    /// Acks and credit announcements ingest did not take in time (dropped).
    [[nodiscard]] std::uint64_t control_dropped() const { return control_dropped_; }

  private:
    WorkerLink(zmq::socket_t socket, std::string instance, std::uint32_t credits,
               const WorkerLinkOptions& options);
    /// Sends within `timeout` (zero: only if the queue has room now); false when not taken.
    [[nodiscard]] Result<bool> send_control(Multipart parts, std::chrono::milliseconds timeout);

    zmq::socket_t socket_;
    std::string instance_;
    std::uint32_t credits_ = 0;
    std::uint64_t session_ = 0;
    std::uint64_t bytes_received_ = 0;
    std::uint64_t bytes_sent_ = 0;
    std::uint64_t control_dropped_ = 0;
    WorkerLinkOptions options_;
    std::chrono::steady_clock::time_point next_heartbeat_;
};

}  // namespace anisoflow::transport
