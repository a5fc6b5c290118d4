#include "anisoflow/transport/socket_security.hpp"

#include <utility>

namespace anisoflow::transport {

Result<SocketSecurity> SocketSecurity::load(const config::v1::Security& security) {
    SocketSecurity out;
    if (security.curve_certificate().empty() && security.curve_public_keys_dir().empty()) {
        return out;
    }
    if (security.curve_certificate().empty() || security.curve_public_keys_dir().empty()) {
        return fail(ErrorCode::kInvalidArgument,
                    "security: curve_certificate and curve_public_keys_dir go together (set both "
                    "for CURVE, neither for plain sockets)");
    }
    auto own = read_curve_certificate(security.curve_certificate(), true);
    if (!own) {
        return tl::unexpected(own.error().with_context("security.curve_certificate"));
    }
    auto authorized = read_authorized_keys(security.curve_public_keys_dir());
    if (!authorized) {
        return tl::unexpected(authorized.error().with_context("security.curve_public_keys_dir"));
    }
    out.own_ = std::move(*own);
    out.public_keys_dir_ = security.curve_public_keys_dir();
    out.authorized_ = std::move(*authorized);
    return out;
}

Result<void> SocketSecurity::start(zmq::context_t& context) {
    if (!curve() || authenticator_) {
        return {};
    }
    auto started = CurveAuthenticator::start(context, authorized_);
    if (!started) {
        return tl::unexpected(started.error());
    }
    authenticator_ = std::move(*started);
    return {};
}

Result<std::optional<CurveSocketKeys>> SocketSecurity::keys_for(std::string_view address) const {
    constexpr std::string_view kTcp = "tcp://";
    if (!curve() || address.size() < 1 + kTcp.size() || address.substr(1, kTcp.size()) != kTcp) {
        return std::optional<CurveSocketKeys>();
    }
    CurveSocketKeys keys{own_, ""};
    if (address.front() == '@') {
        if (!authenticator_) {
            // A CURVE server with no handler admits every client that knows its key.
            return fail(ErrorCode::kInvalidArgument,
                        "'{}': CURVE socket bound before the service's authenticator started",
                        address);
        }
        return std::optional(std::move(keys));
    }
    // ">tcp://host:port": the host names the certificate ([v6 addresses] keep their brackets).
    std::string_view host = address.substr(1 + kTcp.size());
    if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
        host = host.substr(0, colon);
    }
    if (host.empty() || host.find('/') != std::string_view::npos) {
        return fail(ErrorCode::kInvalidArgument, "'{}': no host to find a certificate for",
                    address);
    }
    const auto certificate = public_keys_dir_ / (std::string(host) + ".key");
    auto server = read_curve_certificate(certificate, false);
    if (!server) {
        return tl::unexpected(server.error().with_context(fmt::format(
            "'{}' (the server's certificate is <curve_public_keys_dir>/<host>.key)", address)));
    }
    keys.server_public_key = std::move(server->public_key);
    return std::optional(std::move(keys));
}

Result<SocketOptions> SocketSecurity::secure(std::string_view address,
                                             SocketOptions options) const {
    auto keys = keys_for(address);
    if (!keys) {
        return tl::unexpected(keys.error());
    }
    options.curve = std::move(*keys);
    return options;
}

Result<zmq::socket_t> SocketSecurity::open(zmq::context_t& context, zmq::socket_type type,
                                           std::string_view address, SocketOptions options) const {
    auto secured = secure(address, std::move(options));
    if (!secured) {
        return tl::unexpected(secured.error());
    }
    return open_socket(context, type, address, *secured);
}

std::uint64_t SocketSecurity::clients_admitted() const {
    return authenticator_ ? authenticator_->admitted() : 0;
}

std::uint64_t SocketSecurity::clients_refused() const {
    return authenticator_ ? authenticator_->refused() : 0;
}

}  // namespace anisoflow::transport
