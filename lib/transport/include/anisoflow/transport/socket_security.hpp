#pragma once
// A service's [security] section put to work (docs/security.md): its CURVE certificate, the
// directory of public certificates it trusts, and the ZAP handler that admits clients. Services
// ask it for the keys of each socket; tcp sockets get CURVE, ipc:// and inproc:// stay plain
// (they never leave the host, and file permissions guard ipc paths).

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "anisoflow/config/v1/services.pb.h"

#include "anisoflow/core/result.hpp"
#include "anisoflow/transport/curve.hpp"
#include "anisoflow/transport/socket.hpp"

namespace anisoflow::transport {

class SocketSecurity {
  public:
    /// Plain sockets.
    SocketSecurity() = default;
    /// Reads the certificate and the public certificates `security` names; both empty is plain.
    /// Errors name the key (security.curve_certificate, ...) and the file at fault.
    [[nodiscard]] static Result<SocketSecurity> load(const config::v1::Security& security);

    [[nodiscard]] bool curve() const { return !own_.public_key.empty(); }
    /// Starts the ZAP handler on `context`, which then admits the clients whose certificates
    /// are in the public keys directory. Call before the first socket binds; keep this object
    /// alive until the context's sockets are closed, and destroy it before the context.
    [[nodiscard]] Result<void> start(zmq::context_t& context);

    /// The CURVE keys of a socket at `address` (the CZMQ form, "@tcp://*:5555" or
    /// ">tcp://ingest:5555"): none when plain or not tcp; for a connect, the server's public
    /// key from <dir>/<host>.key. Errors name the address and the missing certificate.
    [[nodiscard]] Result<std::optional<CurveSocketKeys>> keys_for(std::string_view address) const;
    /// `options` with keys_for(address) set.
    [[nodiscard]] Result<SocketOptions> secure(std::string_view address,
                                               SocketOptions options) const;
    /// open_socket() with secure(address, options): the one call services make per socket.
    [[nodiscard]] Result<zmq::socket_t> open(zmq::context_t& context, zmq::socket_type type,
                                             std::string_view address,
                                             SocketOptions options = {}) const;
    /// Clients admitted and refused by the ZAP handler so far (0 when plain).
    [[nodiscard]] std::uint64_t clients_admitted() const;
    [[nodiscard]] std::uint64_t clients_refused() const;

  private:
    CurveKeyPair own_;
    std::filesystem::path public_keys_dir_;
    std::vector<std::string> authorized_;
    std::shared_ptr<CurveAuthenticator> authenticator_;
};

}  // namespace anisoflow::transport
