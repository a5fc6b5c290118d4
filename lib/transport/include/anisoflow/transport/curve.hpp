#pragma once
// ZeroMQ CURVE security between hosts (docs/security.md): key pairs, certificate files in the
// format czmq and pyzmq's zmq.auth read and write (so Bluesky plans and EPICS sequences can use
// the same files), and a ZAP handler that admits only the clients whose public keys the operator
// listed. Sockets get their keys through SocketOptions::curve (socket.hpp).

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "anisoflow/core/result.hpp"

namespace anisoflow::transport {

/// A CURVE key in ZeroMQ's Z85 text form: 40 characters for 32 bytes.
inline constexpr std::size_t kCurveKeyChars = 40;

struct CurveKeyPair {
    std::string public_key;  ///< Z85, 40 characters
    std::string secret_key;  ///< Z85, 40 characters; empty in a public certificate
};

/// A new key pair from libzmq (libsodium's random source). Errors if libzmq lacks CURVE.
[[nodiscard]] Result<CurveKeyPair> generate_curve_key_pair();

/// Whether `key` is a well-formed Z85 CURVE key (40 characters that decode to 32 bytes).
[[nodiscard]] bool is_curve_key(std::string_view key);

/// Writes `<directory>/<name>.key` (the public key: give it to peers) and
/// `<directory>/<name>.key_secret` (both keys, mode 0600: keep it on the host), in ZeroMQ's
/// certificate format (ZPL, as czmq's zcert and pyzmq's zmq.auth.create_certificates write).
/// Refuses to overwrite either file. Returns the two paths.
[[nodiscard]] Result<std::pair<std::filesystem::path, std::filesystem::path>>
write_curve_certificates(const std::filesystem::path& directory, const std::string& name,
                         const CurveKeyPair& keys);

/// Reads a certificate file: its public key, and its secret key when `need_secret`. Errors name
/// the file and the key that is missing or malformed.
[[nodiscard]] Result<CurveKeyPair> read_curve_certificate(const std::filesystem::path& path,
                                                          bool need_secret);

/// The public keys of every `*.key` certificate in `directory` (the clients a service admits).
/// Errors name the directory or the file at fault; an empty directory is an error too (it would
/// admit nobody, which is never what an operator means).
[[nodiscard]] Result<std::vector<std::string>> read_authorized_keys(
    const std::filesystem::path& directory);

/// The ZAP handler of one ZeroMQ context (RFC 27): CURVE clients whose public key is in the
/// list are admitted, others refused, and the refusals counted. Runs on its own thread until
/// destroyed; start it before the context's CURVE sockets bind. Without it a CURVE server admits
/// any client that knows the server's public key.
class CurveAuthenticator {
  public:
    [[nodiscard]] static Result<std::unique_ptr<CurveAuthenticator>> start(
        zmq::context_t& context, std::vector<std::string> authorized_public_keys);
    ~CurveAuthenticator();
    CurveAuthenticator(const CurveAuthenticator&) = delete;
    CurveAuthenticator& operator=(const CurveAuthenticator&) = delete;
    CurveAuthenticator(CurveAuthenticator&&) = delete;
    CurveAuthenticator& operator=(CurveAuthenticator&&) = delete;

    [[nodiscard]] std::uint64_t admitted() const { return admitted_.load(); }
    [[nodiscard]] std::uint64_t refused() const { return refused_.load(); }

  private:
    CurveAuthenticator() = default;
    void serve(zmq::socket_t socket);

    std::vector<std::string> authorized_;  // Z85, sorted
    std::atomic<bool> stopping_{false};
    std::atomic<std::uint64_t> admitted_{0};
    std::atomic<std::uint64_t> refused_{0};
    std::thread thread_;
};

}  // namespace anisoflow::transport
