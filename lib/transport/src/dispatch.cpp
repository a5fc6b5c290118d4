#include "anisoflow/transport/dispatch.hpp"

#include <algorithm>
#include <cassert>
#include <deque>
#include <map>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

#include "anisoflow/transport/payload.hpp"
#include "anisoflow/transport/socket.hpp"

namespace anisoflow::transport {

namespace {

using Clock = std::chrono::steady_clock;

std::int64_t unix_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
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

struct Worker {
    std::string instance;
    std::uint32_t credits = 0;
    Clock::time_point last_seen;
    std::map<FrameKey, FrameRecord> in_flight;
    std::set<std::string, std::less<>> primed_runs;  // RunStart and calibration cache sent
    std::uint64_t last_assigned = 0;                 // tie-break: the longest unused goes first

    [[nodiscard]] std::size_t free_credits() const {
        return credits > in_flight.size() ? credits - in_flight.size() : 0;
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
    std::deque<FrameRecord> waiting;  // data frames without a worker yet (or re-dispatched)
    DispatchCounters counters;
    std::uint64_t assignments = 0;

    // Sends [routing id][envelope][payloads] without blocking; false when the worker cannot take
    // it (gone: EHOSTUNREACH under ROUTER_MANDATORY, or its pipe full).
    bool send_to(const std::string& id, Multipart parts) {
        Multipart message;
        message.reserve(parts.size() + 1);
        message.emplace_back(id.data(), id.size());
        for (auto& part : parts) {
            message.push_back(std::move(part));
        }
        auto sent = try_send(socket, message);
        if (!sent) {
            spdlog::debug("dispatch: send to worker={} failed error=\"{}\"", id,
                          sent.error().message);
            return false;
        }
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

    void declare_dead(const std::string& id, std::string_view why) {
        const auto found = workers.find(id);
        if (found == workers.end()) {
            return;
        }
        Worker& worker = found->second;
        spdlog::warn("worker lost worker={} reason={} frames_in_flight={}", worker.instance, why,
                     worker.in_flight.size());
        for (auto& [key, record] : worker.in_flight) {
            waiting.push_front(std::move(record));
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
            FrameRecord record = std::move(waiting.front());
            waiting.pop_front();
            const std::string& run_id = record.header.run_id();
            if (!runs.contains(run_id)) {
                continue;  // the run was ended (drain timeout): nothing to do with it
            }
            if (!prime(id, *worker, run_id) || !send_frame(id, record)) {
                waiting.push_front(std::move(record));
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
            FrameKey key{run_id, record.header.sequence()};
            worker->in_flight.insert_or_assign(std::move(key), std::move(record));
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

    void handle(Multipart&& parts, Clock::time_point now) {
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
            auto [it, joined] = workers.try_emplace(id);
            Worker& worker = it->second;
            worker.instance = credit->credit.instance();
            worker.credits = credit->credit.credits();
            worker.last_seen = now;
            if (joined) {
                worker.last_assigned = 0;
                ++counters.workers_joined;
                spdlog::info("worker joined worker={} credits={}", worker.instance, worker.credits);
            }
            return;
        }
        if (auto* ack = std::get_if<FrameAckMessage>(&*decoded)) {
            const auto found = workers.find(id);
            if (found == workers.end()) {
                ++counters.acks_unexpected;  // declared dead meanwhile; its frames went elsewhere
                return;
            }
            found->second.last_seen = now;
            const FrameKey key{ack->ack.run_id(), ack->ack.sequence()};
            if (found->second.in_flight.erase(key) == 1) {
                ++counters.frames_acked;
            } else {
                ++counters.acks_unexpected;
            }
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
    } catch (const zmq::error_t& error) {
        return fail(ErrorCode::kIo, "dispatcher socket for '{}': {}", address, error.what());
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
        s.waiting.push_back(std::move(record));
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

bool Dispatcher::has_credit() const {
    std::size_t free = 0;
    for (const auto& [id, worker] : state_->workers) {
        free += worker.free_credits();
    }
    return free > state_->waiting.size();
}

bool Dispatcher::drained(std::string_view run_id) const {
    for (const FrameRecord& record : state_->waiting) {
        if (record.header.run_id() == run_id) {
            return false;
        }
    }
    for (const auto& [id, worker] : state_->workers) {
        for (const auto& [key, record] : worker.in_flight) {
            if (key.first == run_id) {
                return false;
            }
        }
    }
    return true;
}

void Dispatcher::end_run(std::string_view run_id) {
    State& s = *state_;
    if (const auto run = s.runs.find(run_id); run != s.runs.end()) {
        s.runs.erase(run);
    }
    std::erase_if(s.waiting,
                  [&](const FrameRecord& record) { return record.header.run_id() == run_id; });
    for (auto& [id, worker] : s.workers) {
        std::erase_if(worker.in_flight,
                      [&](const auto& entry) { return entry.first.first == run_id; });
        if (const auto primed = worker.primed_runs.find(run_id);
            primed != worker.primed_runs.end()) {
            worker.primed_runs.erase(primed);
        }
    }
}

std::size_t Dispatcher::workers_alive() const { return state_->workers.size(); }

std::size_t Dispatcher::in_flight() const {
    std::size_t total = 0;
    for (const auto& [id, worker] : state_->workers) {
        total += worker.in_flight.size();
    }
    return total;
}

std::size_t Dispatcher::waiting() const { return state_->waiting.size(); }

std::vector<WorkerInfo> Dispatcher::workers() const {
    std::vector<WorkerInfo> infos;
    for (const auto& [id, worker] : state_->workers) {
        infos.push_back(WorkerInfo{worker.instance, worker.credits, worker.in_flight.size()});
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
    if (auto endpoint = bind_or_connect(socket, address); !endpoint) {
        return tl::unexpected(endpoint.error());
    }
    WorkerLink link(std::move(socket), std::move(instance), credits, options);
    if (auto announced = link.announce(); !announced) {
        return tl::unexpected(announced.error());
    }
    return link;
}

Result<void> WorkerLink::send_control(Multipart parts) {
    auto sent = send(socket_, parts, options_.send_timeout);
    if (!sent) {
        return tl::unexpected(sent.error().with_context("worker link " + instance_));
    }
    if (!*sent) {
        return fail(ErrorCode::kIo, "worker link {}: ingest did not accept a message within {} ms",
                    instance_, options_.send_timeout.count());
    }
    return {};
}

Result<void> WorkerLink::announce() {
    pb::WorkerCredit credit;
    credit.set_instance(instance_);
    credit.set_credits(credits_);
    auto parts = encode_control(credit);
    if (!parts) {
        return tl::unexpected(parts.error());
    }
    next_heartbeat_ = Clock::now() + options_.heartbeat_interval;
    return send_control(std::move(*parts));
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
            return std::optional<DecodeResult>(decode(std::move(**received)));
        }
        if (Clock::now() >= deadline) {
            return std::optional<DecodeResult>();
        }
    }
}

Result<void> WorkerLink::ack(std::string_view run_id, std::uint64_t sequence) {
    pb::FrameAck ack;
    ack.set_run_id(std::string(run_id));
    ack.set_sequence(sequence);
    auto parts = encode_control(ack);
    if (!parts) {
        return tl::unexpected(parts.error());
    }
    return send_control(std::move(*parts));
}

}  // namespace anisoflow::transport
