#pragma once
// Acknowledged dispatch of frames to reduce workers (docs/protocol.md, "Acknowledged dispatch to
// reducers"). Dispatcher is ingest's side (a ROUTER): worker credits, each run's RunStart and
// dark/flat frames sent to a worker before its first frame of the run, data frames to the least
// loaded worker with credit, an in-flight table until FrameAck, re-dispatch of a dead worker's
// frames. WorkerLink is a reduce worker's side (a DEALER named after the worker's instance).

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
};

/// Counts since the Dispatcher was opened (the ingest service exports them as metrics).
struct DispatchCounters {
    std::uint64_t frames_dispatched = 0;    ///< frames handed to a worker for the first time
    std::uint64_t frames_redispatched = 0;  ///< frames sent again after their worker was lost
    std::uint64_t frames_acked = 0;         ///< FrameAcks that closed an in-flight entry
    std::uint64_t calibration_sends = 0;    ///< dark/flat frames sent, one per worker and frame
    /// FrameAcks of frames not in flight at that worker (a late ack after re-dispatch, a
    /// duplicate, a dark or flat frame acknowledged): ignored.
    std::uint64_t acks_unexpected = 0;
    std::uint64_t workers_joined = 0;     ///< workers that announced credits (again)
    std::uint64_t workers_lost = 0;       ///< workers declared dead
    std::uint64_t messages_rejected = 0;  ///< undecodable or unexpected messages from workers
};

/// One live worker, for logs, metrics and tests.
struct WorkerInfo {
    std::string instance;       ///< its routing id (WorkerCredit.instance)
    std::uint32_t credits = 0;  ///< frames it may hold, as last announced
    std::size_t in_flight = 0;  ///< frames sent and not yet acknowledged
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
    /// live worker with the most free credit and stays in flight until its FrameAck; without
    /// credit (check has_credit() first) it waits inside the dispatcher and goes out from poll().
    /// Errors: an unknown run id, a frame that encode_frame() refuses.
    [[nodiscard]] Result<void> dispatch(const pb::FrameHeader& header, zmq::message_t payload);

    /// Reads the workers' messages for up to `timeout` (credits, acks), declares workers silent
    /// for worker_timeout dead and sends their frames again to the others.
    [[nodiscard]] Result<void> poll(std::chrono::milliseconds timeout);

    /// True when a new data frame would go out at once: the live workers' free credits exceed
    /// the frames waiting for re-dispatch.
    [[nodiscard]] bool has_credit() const;

    /// True when no frame of `run_id` is in flight or waiting to be sent.
    [[nodiscard]] bool drained(std::string_view run_id) const;

    /// Forgets a run: its RunStart and calibration cache, and any of its frames still in flight
    /// or waiting (call it once drained() or a drain timeout passed).
    void end_run(std::string_view run_id);

    [[nodiscard]] std::size_t workers_alive() const;
    [[nodiscard]] std::size_t in_flight() const;  ///< frames sent, not yet acknowledged
    [[nodiscard]] std::size_t waiting() const;    ///< frames waiting for credit (re-dispatch)
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
    /// How long ack() and announce() wait when the DEALER's queue is full.
    std::chrono::milliseconds send_timeout{5000};
    int send_hwm = 1000;
    int receive_hwm = 1000;
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

    /// Acknowledges a frame (after its ReducedFrame was accepted downstream); returns its credit.
    [[nodiscard]] Result<void> ack(std::string_view run_id, std::uint64_t sequence);

    [[nodiscard]] const std::string& instance() const { return instance_; }
    [[nodiscard]] std::uint32_t credits() const { return credits_; }

  private:
    WorkerLink(zmq::socket_t socket, std::string instance, std::uint32_t credits,
               const WorkerLinkOptions& options);
    [[nodiscard]] Result<void> send_control(Multipart parts);

    zmq::socket_t socket_;
    std::string instance_;
    std::uint32_t credits_ = 0;
    WorkerLinkOptions options_;
    std::chrono::steady_clock::time_point next_heartbeat_;
};

}  // namespace anisoflow::transport
