#pragma once
// Thin helpers over cppzmq for the services: open a socket from an address string, send a
// multipart without blocking (backpressure) or with a timeout, receive with a timeout. cppzmq's
// exceptions stop here and come back as Result errors.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <zmq.hpp>

#include "anisoflow/core/result.hpp"
#include "anisoflow/transport/curve.hpp"
#include "anisoflow/transport/message.hpp"

namespace anisoflow::transport {

/// CURVE keys of one socket (docs/security.md). A bound socket is the CURVE server and uses
/// `own`; a connecting one is the client and also needs the public key of the server it
/// connects to.
struct CurveSocketKeys {
    CurveKeyPair own;
    std::string server_public_key;  ///< connect only: the bound peer's public key (Z85)
};

/// Socket options the services set; defaults suit frames of a few MB.
struct SocketOptions {
    int send_hwm = 1000;     ///< messages queued for sending before try_send() reports false
    int receive_hwm = 1000;  ///< messages queued on receipt before the peer is held back
    std::chrono::milliseconds linger{0};  ///< how long close waits for unsent messages
    /// SUB sockets only: topic prefix; "" subscribes to everything (our part 0 is a Protobuf
    /// envelope, so topics are not used to filter).
    std::string subscribe;
    /// CURVE authentication and encryption; none: a plain socket (loopback, trusted networks).
    std::optional<CurveSocketKeys> curve;
};

/// Binds ("@tcp://*:5555", "@inproc://frames") or connects (">tcp://ingest:5555") `socket`, the
/// prefix saying which (the CZMQ convention). Returns the endpoint actually bound or connected:
/// for "@tcp://127.0.0.1:*" the port the system chose. Errors name the address.
[[nodiscard]] Result<std::string> bind_or_connect(zmq::socket_t& socket, std::string_view address);

/// Sets CURVE on `socket` before it binds or connects to `address` (the mechanism is fixed at
/// the handshake): server for "@...", client for ">..." (which needs the server's key). Errors
/// name the address and the missing key.
[[nodiscard]] Result<void> apply_curve(zmq::socket_t& socket, std::string_view address,
                                       const CurveSocketKeys& keys);

/// A socket of `type` with `options` set, bound or connected to `address` (bind_or_connect()).
[[nodiscard]] Result<zmq::socket_t> open_socket(zmq::context_t& context, zmq::socket_type type,
                                                std::string_view address,
                                                const SocketOptions& options = {});

/// Sends every part without blocking. true: the message was queued (the parts are moved out of
/// `parts`); false: the peer or the queue is full (high-water mark) or no peer is connected, and
/// `parts` is left intact for a retry or a counted drop. ZeroMQ queues the rest of a multipart
/// once it accepted part 0, so a message is never half sent.
[[nodiscard]] Result<bool> try_send(zmq::socket_t& socket, Multipart& parts);

/// As try_send(), waiting up to `timeout` for the peer to accept; false when it did not.
[[nodiscard]] Result<bool> send(zmq::socket_t& socket, Multipart& parts,
                                std::chrono::milliseconds timeout);

/// Receives one whole multipart message, waiting up to `timeout`; nullopt when none came.
[[nodiscard]] Result<std::optional<Multipart>> receive(zmq::socket_t& socket,
                                                       std::chrono::milliseconds timeout);

}  // namespace anisoflow::transport
