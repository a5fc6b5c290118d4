#include "anisoflow/transport/dispatch.hpp"

#include <algorithm>
#include <cassert>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

#include "anisoflow/core/clock.hpp"
#include "anisoflow/transport/payload.hpp"
#include "anisoflow/transport/socket.hpp"

namespace anisoflow::transport {

namespace {

using Clock = std::chrono::steady_clock;

// A worker process's session: random, never 0 (0 = not sent).
std::uint64_t new_session() {
    std::random_device device;
    const std::uint64_t drawn =
        (std::uint64_t{device()} << 32U) ^ device() ^ static_cast<std::uint64_t>(unix_now_ns());
    return drawn == 0 ? 1 : drawn;
}

bool is_calibration(pb::FrameKind kind) {
    return kind == pb::FRAME_KIND_DARK || kind == pb::FRAME_KIND_FLAT;
}

// A frame as the dispatcher keeps it: the payload is shared by every send (zero copy).
struct FrameRecord {
    pb::FrameHeader header;
    std::shared_ptr<const zmq::message_t> payload;
    bool sent_before = false;  // counted as dispatched already; a later send is a re-dispatch
};

using FrameKey = std::pair<std::string, std::uint64_t>;  // (run id, sequence)

// A data frame from dispatch() until analyze confirms it (or its run ends).
struct Entry {
    FrameRecord record;
    std::string worker;    // routing id of the worker it is charged to; empty: waiting
    bool reduced = false;  // the worker acknowledged it: the cake left, analyze has not said so
};

struct Worker {
    std::string instance;
    std::uint32_t credits = 0;
    std::uint64_t session = 0;  // WorkerCredit.session; another value = the worker restarted
    Clock::time_point last_seen;
    std::set<FrameKey> holding;  // sent, not yet acknowledged: each uses a credit
    std::set<std::string, std::less<>> primed_runs;  // RunStart and calibration cache sent
    std::uint64_t last_assigned = 0;                 // tie-break: the longest unused goes first

    [[nodiscard]] std::size_t free_credits() const {
        return credits > holding.size() ? credits - holding.size() : 0;
    }
};

struct RunState {
    pb::RunStart start;
    std::vector<FrameRecord> calibration;  // darks and flats in arrival order
};

}  // namespace

struct Dispatcher::State {
    DispatcherOptions options;
    zmq::socket_t socket;
    std::string endpoint;
    std::map<std::string, Worker, std::less<>> workers;  // by routing id
    std::map<std::string, RunState, std::less<>> runs;
    std::map<FrameKey, Entry> frames;  // every data frame not yet confirmed by analyze
    std::deque<FrameKey> waiting;      // frames without a worker, in dispatch order
    DispatchCounters counters;
    std::uint64_t assignments = 0;
    // What a worker declared dead had been primed with, by routing id: if the same process
    // (same session) speaks again it still holds those RunStarts and calibration frames, and
    // sending them twice would count its darks twice.
    struct Departed {
        std::uint64_t session = 0;
        std::set<std::string, std::less<>> primed_runs;
    };
    std::map<std::string, Departed, std::less<>> departed;

    // Sends [routing id][envelope][payloads] without blocking; false when the worker cannot take
    // it (gone: EHOSTUNREACH under ROUTER_MANDATORY, or its pipe full).
    bool send_to(const std::string& id, Multipart parts) {
        Multipart message;
        message.reserve(parts.size() + 1);
        message.emplace_back(id.data(), id.size());
        for (auto& part : parts) {
            message.push_back(std::move(part));
        }
        const std::uint64_t bytes = size_of(message);
        auto sent = try_send(socket, message);
        if (!sent) {
            spdlog::debug("dispatch: send to worker={} failed error=\"{}\"", id,
                          sent.error().message);
            return false;
        }
        counters.bytes_sent += *sent ? bytes : 0;
        return *sent;
    }

    bool send_frame(const std::string& id, const FrameRecord& record) {
        pb::FrameHeader header = record.header;
        header.set_sent_unix_ns(unix_now_ns());
        auto parts =
            encode_frame(header, make_shared_payload(record.payload, bytes_of(*record.payload)));
        if (!parts) {
            // dispatch() encoded this frame once already; the same header cannot fail now.
            assert(false && "a frame accepted by dispatch() encodes");
            return false;
        }
        return send_to(id, std::move(*parts));
    }

    // RunStart and every calibration frame of the run so far, once per worker and run.
    bool prime(const std::string& id, Worker& worker, const std::string& run_id) {
        if (worker.primed_runs.contains(run_id)) {
            return true;
        }
        const auto run = runs.find(run_id);
        if (run == runs.end()) {
            return false;
        }
        auto start = encode_control(run->second.start);
        if (!start || !send_to(id, std::move(*start))) {
            return false;
        }
        for (const FrameRecord& record : run->second.calibration) {
            if (!send_frame(id, record)) {
                return false;
            }
            ++counters.calibration_sends;
        }
        worker.primed_runs.insert(run_id);
        return true;
    }

    // Every frame charged to the worker that analyze has not confirmed goes back to the front
    // of the waiting line, in sequence order: its cake may have died in the worker's queues.
    void declare_dead(const std::string& id, std::string_view why) {
        const auto found = workers.find(id);
        if (found == workers.end()) {
            return;
        }
        std::vector<FrameKey> orphans;
        std::size_t reduced = 0;
        for (auto& [key, entry] : frames) {
            if (entry.worker == id) {
                orphans.push_back(key);
                reduced += entry.reduced ? 1 : 0;
                entry.worker.clear();
                entry.reduced = false;
            }
        }
        spdlog::warn(
            "worker lost worker={} reason={} frames_unacknowledged={} frames_unconfirmed={}",
            found->second.instance, why, orphans.size() - reduced, reduced);
        waiting.insert(waiting.begin(), orphans.begin(), orphans.end());
        if (found->second.session != 0) {
            departed[id] = Departed{found->second.session, std::move(found->second.primed_runs)};
        }
        workers.erase(found);
        ++counters.workers_lost;
    }

    // The live worker with the most free credit (then the one unused longest); nullptr if none.
    Worker* pick(std::string& id_out) {
        Worker* best = nullptr;
        for (auto& [id, worker] : workers) {
            if (worker.free_credits() == 0) {
                continue;
            }
            if (best == nullptr || worker.free_credits() > best->free_credits() ||
                (worker.free_credits() == best->free_credits() &&
                 worker.last_assigned < best->last_assigned)) {
                best = &worker;
                id_out = id;
            }
        }
        return best;
    }

    // Sends waiting data frames while some worker has credit.
    void flush_waiting() {
        while (!waiting.empty()) {
            std::string id;
            Worker* worker = pick(id);
            if (worker == nullptr) {
                return;
            }
            const FrameKey key = waiting.front();
            waiting.pop_front();
            const auto entry = frames.find(key);
            if (entry == frames.end() || !entry->second.worker.empty()) {
                continue;  // confirmed meanwhile (a late cake of a lost worker): nothing to send
            }
            if (!runs.contains(key.first)) {
                frames.erase(entry);  // the run was ended (drain timeout)
                continue;
            }
            FrameRecord& record = entry->second.record;
            if (!prime(id, *worker, key.first) || !send_frame(id, record)) {
                waiting.push_front(key);
                declare_dead(id, "send_failed");
                continue;
            }
            if (record.sent_before) {
                ++counters.frames_redispatched;
            } else {
                ++counters.frames_dispatched;
                record.sent_before = true;
            }
            worker->last_assigned = ++assignments;
            worker->holding.insert(key);
            entry->second.worker = id;
            entry->second.reduced = false;
        }
    }

    void expire(Clock::time_point now) {
        std::vector<std::string> silent;
        for (const auto& [id, worker] : workers) {
            if (now - worker.last_seen > options.worker_timeout) {
                silent.push_back(id);
            }
        }
        for (const std::string& id : silent) {
            declare_dead(id, "timeout");
        }
    }

    void confirm(const FrameKey& key) {
        const auto entry = frames.find(key);
        if (entry == frames.end()) {
            ++counters.confirmations_unexpected;
            return;
        }
        if (entry->second.worker.empty()) {
            // Waiting for re-dispatch after its worker was lost, yet its cake did arrive.
            std::erase(waiting, key);
        }
        // A worker's credit stays in use until that worker's own ack: it still holds the frame.
        frames.erase(entry);
        ++counters.frames_confirmed;
    }

    void on_credit(const std::string& id, const pb::WorkerCredit& credit, Clock::time_point now) {
        if (const auto known = workers.find(id); known != workers.end() && credit.session() != 0 &&
                                                 known->second.session != credit.session()) {
            // The same name from a new process: the old one's frames and priming are void.
            declare_dead(id, "restarted");
        }
        auto [it, joined] = workers.try_emplace(id);
        Worker& worker = it->second;
        worker.instance = credit.instance();
        worker.credits = credit.credits();
        worker.session = credit.session();
        worker.last_seen = now;
        if (joined) {
            worker.last_assigned = 0;
            if (const auto back = departed.find(id); back != departed.end() &&
                                                     back->second.session == credit.session() &&
                                                     credit.session() != 0) {
                // Declared dead (silent too long) but the same process: still primed.
                for (const std::string& run_id : back->second.primed_runs) {
                    if (runs.contains(run_id)) {
                        worker.primed_runs.insert(run_id);
                    }
                }
            }
            departed.erase(id);
            ++counters.workers_joined;
            spdlog::info("worker joined worker={} credits={}", worker.instance, worker.credits);
        }
    }

    void on_ack(const std::string& id, const pb::FrameAck& ack, Clock::time_point now) {
        const FrameKey key{ack.run_id(), ack.sequence()};
        const auto found = workers.find(id);
        if (found != workers.end()) {
            found->second.last_seen = now;
        }
        if (ack.status() == pb::ACK_STATUS_RECEIVED) {
            // Analyze's receipt is true whoever relays it, a worker declared dead included.
            confirm(key);
            return;
        }
        if (found == workers.end() || found->second.holding.erase(key) == 0) {
            ++counters.acks_unexpected;  // declared dead meanwhile; its frames went elsewhere
            return;
        }
        ++counters.frames_acked;
        const auto entry = frames.find(key);
        if (entry == frames.end() || entry->second.worker != id) {
            return;  // confirmed already (the receipt overtook the ack), or re-dispatched
        }
        if (ack.status() == pb::ACK_STATUS_REJECTED) {
            // No worker can reduce it: sending it round the workers would not help.
            frames.erase(entry);
            ++counters.frames_rejected;
            return;
        }
        entry->second.reduced = true;
    }

    void handle(Multipart&& parts, Clock::time_point now) {
        counters.bytes_received += size_of(parts);
        if (parts.size() < 2) {
            ++counters.messages_rejected;
            return;
        }
        std::string id(static_cast<const char*>(parts.front().data()), parts.front().size());
        Multipart body;
        body.reserve(parts.size() - 1);
        for (std::size_t i = 1; i < parts.size(); ++i) {
            body.push_back(std::move(parts[i]));
        }
        auto decoded = decode(std::move(body));
        if (!decoded) {
            ++counters.messages_rejected;
            spdlog::debug("dispatch: rejected message from worker={} reason={} error=\"{}\"", id,
                          to_string(decoded.error().reason), decoded.error().error.message);
            return;
        }
        if (auto* credit = std::get_if<WorkerCreditMessage>(&*decoded)) {
            on_credit(id, credit->credit, now);
            return;
        }
        if (auto* ack = std::get_if<FrameAckMessage>(&*decoded)) {
            on_ack(id, ack->ack, now);
            return;
        }
        ++counters.messages_rejected;  // a worker sends nothing else on this socket
    }
};

Dispatcher::Dispatcher(std::unique_ptr<State> state) : state_(std::move(state)) {}
Dispatcher::~Dispatcher() = default;
Dispatcher::Dispatcher(Dispatcher&&) noexcept = default;
Dispatcher& Dispatcher::operator=(Dispatcher&&) noexcept = default;

Result<Dispatcher> Dispatcher::open(zmq::context_t& context, std::string_view address,
                                    const DispatcherOptions& options) {
    auto state = std::make_unique<State>();
    state->options = options;
    try {
        state->socket = zmq::socket_t(context, zmq::socket_type::router);
        state->socket.set(zmq::sockopt::sndhwm, options.send_hwm);
        state->socket.set(zmq::sockopt::rcvhwm, options.receive_hwm);
        state->socket.set(zmq::sockopt::linger, 0);
        // An unroutable send is an error (a worker gone), not a silent drop.
        state->socket.set(zmq::sockopt::router_mandatory, true);
        // A restarted worker reconnects under its old name before the old pipe is torn down
        // (a SIGKILL leaves no goodbye): the new connection takes the name over.
        state->socket.set(zmq::sockopt::router_handover, true);
    } catch (const zmq::error_t& error) {
        return fail(ErrorCode::kIo, "dispatcher socket for '{}': {}", address, error.what());
    }
    if (options.curve) {
        if (auto secured = apply_curve(state->socket, address, *options.curve); !secured) {
            return tl::unexpected(secured.error());
        }
    }
    auto endpoint = bind_or_connect(state->socket, address);
    if (!endpoint) {
        return tl::unexpected(endpoint.error());
    }
    state->endpoint = std::move(*endpoint);
    return Dispatcher(std::move(state));
}

const std::string& Dispatcher::endpoint() const { return state_->endpoint; }

Result<void> Dispatcher::start_run(const pb::RunStart& start) {
    if (auto encoded = encode_control(start); !encoded) {
        return tl::unexpected(encoded.error());
    }
    state_->runs.try_emplace(start.run_id(), RunState{start, {}});
    return {};
}

Result<void> Dispatcher::dispatch(const pb::FrameHeader& header, zmq::message_t payload) {
    State& s = *state_;
    const auto run = s.runs.find(header.run_id());
    if (run == s.runs.end()) {
        return fail(ErrorCode::kInvalidArgument,
                    "dispatch: frame {} of run '{}' before its start_run()", header.sequence(),
                    header.run_id());
    }
    FrameRecord record;
    record.header = header;
    // Checked once here, so every later send of the same record encodes.
    record.header.set_payload_size_bytes(payload.size());
    if (record.header.encoding() == pb::ENCODING_RAW &&
        record.header.uncompressed_size_bytes() == 0) {
        record.header.set_uncompressed_size_bytes(payload.size());
    }
    record.payload = std::make_shared<const zmq::message_t>(std::move(payload));
    if (auto encoded = encode_frame(record.header,
                                    make_shared_payload(record.payload, bytes_of(*record.payload)));
        !encoded) {
        return tl::unexpected(encoded.error());
    }
    if (!is_calibration(header.kind())) {
        FrameKey key{header.run_id(), header.sequence()};
        if (s.frames.contains(key)) {
            return fail(ErrorCode::kInvalidArgument, "dispatch: frame {} of run '{}' is in flight",
                        header.sequence(), header.run_id());
        }
        s.frames.emplace(key, Entry{std::move(record), {}, false});
        s.waiting.push_back(std::move(key));
        s.flush_waiting();
        return {};
    }
    record.sent_before = true;
    run->second.calibration.push_back(record);
    ++s.counters.frames_dispatched;
    std::vector<std::string> failed;
    for (auto& [id, worker] : s.workers) {
        const bool primed = worker.primed_runs.contains(header.run_id());
        // An unprimed worker gets the whole cache, this frame included.
        const bool ok = primed ? s.send_frame(id, record) : s.prime(id, worker, header.run_id());
        if (!ok) {
            failed.push_back(id);
        } else if (primed) {
            ++s.counters.calibration_sends;
        }
    }
    for (const std::string& id : failed) {
        s.declare_dead(id, "send_failed");
    }
    s.flush_waiting();
    return {};
}

Result<void> Dispatcher::poll(std::chrono::milliseconds timeout) {
    State& s = *state_;
    // Wait up to `timeout` for the first message, then handle whatever else is ready.
    auto wait = timeout;
    while (true) {
        auto received = receive(s.socket, wait);
        if (!received) {
            return tl::unexpected(received.error());
        }
        const auto now = Clock::now();
        if (*received) {
            s.handle(std::move(**received), now);
            wait = std::chrono::milliseconds::zero();
            continue;
        }
        s.expire(now);
        s.flush_waiting();
        return {};
    }
}

void Dispatcher::confirm(std::string_view run_id, std::uint64_t sequence) {
    state_->confirm(FrameKey{std::string(run_id), sequence});
}

bool Dispatcher::has_credit() const {
    if (state_->options.max_unconfirmed > 0 && unconfirmed() >= state_->options.max_unconfirmed) {
        return false;
    }
    std::size_t free = 0;
    for (const auto& [id, worker] : state_->workers) {
        free += worker.free_credits();
    }
    return free > state_->waiting.size();
}

Dispatcher::RunBacklog Dispatcher::backlog(std::string_view run_id) const {
    RunBacklog backlog;
    const auto first = state_->frames.lower_bound(FrameKey{std::string(run_id), 0});
    for (auto it = first; it != state_->frames.end() && it->first.first == run_id; ++it) {
        const Entry& entry = it->second;
        if (entry.worker.empty()) {
            ++backlog.waiting;
        } else if (entry.reduced) {
            ++backlog.unconfirmed;
        } else {
            ++backlog.at_worker;
        }
    }
    return backlog;
}

bool Dispatcher::drained(std::string_view run_id) const {
    const auto first = state_->frames.lower_bound(FrameKey{std::string(run_id), 0});
    return first == state_->frames.end() || first->first.first != run_id;
}

void Dispatcher::end_run(std::string_view run_id) {
    State& s = *state_;
    if (const auto run = s.runs.find(run_id); run != s.runs.end()) {
        s.runs.erase(run);
    }
    std::erase_if(s.waiting, [&](const FrameKey& key) { return key.first == run_id; });
    std::erase_if(s.frames, [&](const auto& entry) { return entry.first.first == run_id; });
    for (auto& [id, worker] : s.workers) {
        // The worker may still hold some; their acks will be counted as unexpected.
        std::erase_if(worker.holding, [&](const FrameKey& key) { return key.first == run_id; });
        if (const auto primed = worker.primed_runs.find(run_id);
            primed != worker.primed_runs.end()) {
            worker.primed_runs.erase(primed);
        }
    }
}

std::size_t Dispatcher::workers_alive() const { return state_->workers.size(); }

std::size_t Dispatcher::in_flight() const { return state_->frames.size() - state_->waiting.size(); }

std::size_t Dispatcher::unconfirmed() const {
    return static_cast<std::size_t>(
        std::count_if(state_->frames.begin(), state_->frames.end(),
                      [](const auto& entry) { return entry.second.reduced; }));
}

std::size_t Dispatcher::waiting() const { return state_->waiting.size(); }

std::vector<WorkerInfo> Dispatcher::workers() const {
    std::vector<WorkerInfo> infos;
    for (const auto& [id, worker] : state_->workers) {
        WorkerInfo info{worker.instance, worker.credits, worker.holding.size(), 0};
        for (const auto& [key, entry] : state_->frames) {
            info.unconfirmed += entry.worker == id && entry.reduced ? 1 : 0;
        }
        infos.push_back(std::move(info));
    }
    return infos;
}

const DispatchCounters& Dispatcher::counters() const { return state_->counters; }

// ---- WorkerLink --------------------------------------------------------------------------------

WorkerLink::WorkerLink(zmq::socket_t socket, std::string instance, std::uint32_t credits,
                       const WorkerLinkOptions& options)
    : socket_(std::move(socket)),
      instance_(std::move(instance)),
      credits_(credits),
      session_(new_session()),
      options_(options),
      next_heartbeat_(Clock::now()) {}

Result<WorkerLink> WorkerLink::open(zmq::context_t& context, std::string_view address,
                                    std::string instance, std::uint32_t credits,
                                    const WorkerLinkOptions& options) {
    if (instance.empty()) {
        return fail(ErrorCode::kInvalidArgument, "worker link: the instance name is empty");
    }
    zmq::socket_t socket;
    try {
        socket = zmq::socket_t(context, zmq::socket_type::dealer);
        socket.set(zmq::sockopt::routing_id, instance);
        socket.set(zmq::sockopt::sndhwm, options.send_hwm);
        socket.set(zmq::sockopt::rcvhwm, options.receive_hwm);
        socket.set(zmq::sockopt::linger, 0);
    } catch (const zmq::error_t& error) {
        return fail(ErrorCode::kIo, "worker link socket for '{}': {}", address, error.what());
    }
    if (options.curve) {
        if (auto secured = apply_curve(socket, address, *options.curve); !secured) {
            return tl::unexpected(secured.error());
        }
    }
    if (auto endpoint = bind_or_connect(socket, address); !endpoint) {
        return tl::unexpected(endpoint.error());
    }
    WorkerLink link(std::move(socket), std::move(instance), credits, options);
    if (auto announced = link.announce(); !announced) {
        return tl::unexpected(announced.error());
    }
    return link;
}

Result<bool> WorkerLink::send_control(Multipart parts, std::chrono::milliseconds timeout) {
    const std::uint64_t bytes = size_of(parts);
    auto sent = timeout.count() == 0 ? try_send(socket_, parts) : send(socket_, parts, timeout);
    if (!sent) {
        return tl::unexpected(sent.error().with_context("worker link " + instance_));
    }
    if (*sent) {
        bytes_sent_ += bytes;
    } else {
        ++control_dropped_;
    }
    return *sent;
}

Result<void> WorkerLink::announce() {
    pb::WorkerCredit credit;
    credit.set_instance(instance_);
    credit.set_credits(credits_);
    credit.set_session(session_);
    auto parts = encode_control(credit);
    if (!parts) {
        return tl::unexpected(parts.error());
    }
    next_heartbeat_ = Clock::now() + options_.heartbeat_interval;
    // A credit heartbeat ingest cannot take now (ingest gone or restarting) is skipped: the
    // next one follows a heartbeat interval later, and a worker must outlive its ingest.
    auto sent = send_control(std::move(*parts), std::chrono::milliseconds::zero());
    if (!sent) {
        return tl::unexpected(sent.error());
    }
    return {};
}

Result<void> WorkerLink::set_credits(std::uint32_t credits) {
    credits_ = credits;
    return announce();
}

Result<std::optional<DecodeResult>> WorkerLink::receive(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
        const auto now = Clock::now();
        if (now >= next_heartbeat_) {
            if (auto announced = announce(); !announced) {
                return tl::unexpected(announced.error());
            }
        }
        const auto until = std::min(deadline, next_heartbeat_);
        const auto wait =
            std::max(std::chrono::milliseconds::zero(),
                     std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()));
        auto received = transport::receive(socket_, wait);
        if (!received) {
            return tl::unexpected(received.error());
        }
        if (*received) {
            bytes_received_ += size_of(**received);
            return std::optional<DecodeResult>(decode(std::move(**received)));
        }
        if (Clock::now() >= deadline) {
            return std::optional<DecodeResult>();
        }
    }
}

Result<void> WorkerLink::ack(std::string_view run_id, std::uint64_t sequence,
                             pb::AckStatus status) {
    pb::FrameAck ack;
    ack.set_run_id(std::string(run_id));
    ack.set_sequence(sequence);
    ack.set_status(status);
    auto parts = encode_control(ack);
    if (!parts) {
        return tl::unexpected(parts.error());
    }
    auto sent = send_control(std::move(*parts), options_.send_timeout);
    if (!sent) {
        return tl::unexpected(sent.error());
    }
    if (!*sent) {
        spdlog::warn(
            "ack dropped worker={} run={} sequence={} status={} detail=\"ingest did not take it "
            "within {} ms\" dropped_total={}",
            instance_, run_id, sequence, pb::AckStatus_Name(status), options_.send_timeout.count(),
            control_dropped_);
    }
    return {};
}

}  // namespace anisoflow::transport
