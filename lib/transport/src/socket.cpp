#include "anisoflow/transport/socket.hpp"

#include <cerrno>
#include <iterator>
#include <utility>

#include <zmq_addon.hpp>

namespace anisoflow::transport {
namespace {

Error zmq_failure(std::string_view what, const zmq::error_t& error) {
    return Error{ErrorCode::kIo, fmt::format("{}: {} (errno {})", what, error.what(), error.num())};
}

}  // namespace

Result<std::string> bind_or_connect(zmq::socket_t& socket, std::string_view address) {
    if (address.size() < 2 || (address.front() != '@' && address.front() != '>')) {
        return fail(ErrorCode::kInvalidArgument,
                    "address '{}' must start with '@' (bind) or '>' (connect), e.g. "
                    "'@tcp://*:5555' or '>tcp://ingest:5555'",
                    address);
    }
    const bool bind = address.front() == '@';
    const std::string endpoint(address.substr(1));
    try {
        if (bind) {
            socket.bind(endpoint);
            return socket.get(zmq::sockopt::last_endpoint);
        }
        socket.connect(endpoint);
        return endpoint;
    } catch (const zmq::error_t& error) {
        return tl::unexpected(
            zmq_failure(fmt::format("{} '{}'", bind ? "bind" : "connect", endpoint), error));
    }
}

Result<void> apply_curve(zmq::socket_t& socket, std::string_view address,
                         const CurveSocketKeys& keys) {
    if (!is_curve_key(keys.own.public_key) || !is_curve_key(keys.own.secret_key)) {
        return fail(ErrorCode::kInvalidArgument,
                    "'{}': CURVE needs this service's key pair (40-character Z85 keys)", address);
    }
    try {
        if (!address.empty() && address.front() == '@') {
            socket.set(zmq::sockopt::curve_server, 1);
            socket.set(zmq::sockopt::curve_secretkey, keys.own.secret_key);
            // libzmq asks the context's ZAP handler (CurveAuthenticator) about every client; with
            // no handler bound it admits any client that knows the server key, so a service starts
            // its authenticator before its first CURVE socket.
            socket.set(zmq::sockopt::zap_domain, "anisoflow");
            return {};
        }
        if (!is_curve_key(keys.server_public_key)) {
            return fail(ErrorCode::kInvalidArgument,
                        "'{}': a CURVE client needs the public key of the service it connects to",
                        address);
        }
        socket.set(zmq::sockopt::curve_serverkey, keys.server_public_key);
        socket.set(zmq::sockopt::curve_publickey, keys.own.public_key);
        socket.set(zmq::sockopt::curve_secretkey, keys.own.secret_key);
        return {};
    } catch (const zmq::error_t& error) {
        return tl::unexpected(zmq_failure(fmt::format("CURVE keys for '{}'", address), error));
    }
}

Result<zmq::socket_t> open_socket(zmq::context_t& context, zmq::socket_type type,
                                  std::string_view address, const SocketOptions& options) {
    try {
        zmq::socket_t socket(context, type);
        socket.set(zmq::sockopt::sndhwm, options.send_hwm);
        socket.set(zmq::sockopt::rcvhwm, options.receive_hwm);
        socket.set(zmq::sockopt::linger, static_cast<int>(options.linger.count()));
        if (type == zmq::socket_type::sub) {
            socket.set(zmq::sockopt::subscribe, options.subscribe);
        }
        if (options.curve) {
            if (auto secured = apply_curve(socket, address, *options.curve); !secured) {
                return tl::unexpected(secured.error());
            }
        }
        auto endpoint = bind_or_connect(socket, address);
        if (!endpoint) {
            return tl::unexpected(endpoint.error());
        }
        return socket;
    } catch (const zmq::error_t& error) {
        return tl::unexpected(zmq_failure(fmt::format("socket for '{}'", address), error));
    }
}

Result<bool> try_send(zmq::socket_t& socket, Multipart& parts) {
    if (parts.empty()) {
        return fail(ErrorCode::kInvalidArgument, "send: a message needs at least one part");
    }
    try {
        for (std::size_t i = 0; i < parts.size(); ++i) {
            const bool last = i + 1 == parts.size();
            const auto flags = last ? zmq::send_flags::dontwait
                                    : zmq::send_flags::dontwait | zmq::send_flags::sndmore;
            if (!socket.send(parts[i], flags)) {
                if (i == 0) {
                    return false;  // nothing queued: the caller keeps the message
                }
                // ZeroMQ does not refuse later parts once part 0 is queued; if it ever does, the
                // message is lost and the caller must know.
                return fail(ErrorCode::kIo, "send: part {} of {} refused after part 0 was queued",
                            i, parts.size());
            }
        }
    } catch (const zmq::error_t& error) {
        return tl::unexpected(zmq_failure("send", error));
    }
    parts.clear();
    return true;
}

Result<bool> send(zmq::socket_t& socket, Multipart& parts, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        auto sent = try_send(socket, parts);
        if (!sent || *sent) {
            return sent;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left <= std::chrono::milliseconds::zero()) {
            return false;
        }
        try {
            zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLOUT, 0};
            zmq::poll(&item, 1, left);
        } catch (const zmq::error_t& error) {
            if (error.num() != EINTR) {  // a signal: try again until the deadline
                return tl::unexpected(zmq_failure("send: poll", error));
            }
        }
    }
}

Result<std::optional<Multipart>> receive(zmq::socket_t& socket, std::chrono::milliseconds timeout) {
    try {
        zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&item, 1, timeout) == 0) {
            return std::optional<Multipart>();
        }
        Multipart parts;
        // POLLIN means a whole message is ready (ZeroMQ delivers multiparts atomically).
        if (!zmq::recv_multipart(socket, std::back_inserter(parts), zmq::recv_flags::dontwait)) {
            return std::optional<Multipart>();
        }
        return std::optional<Multipart>(std::move(parts));
    } catch (const zmq::error_t& error) {
        if (error.num() == EINTR) {
            // A signal (SIGTERM: the stop request) interrupted the poll: nothing received; the
            // caller looks at its stop flag and loops, as after a timeout.
            return std::optional<Multipart>();
        }
        return tl::unexpected(zmq_failure("receive", error));
    }
}

}  // namespace anisoflow::transport
