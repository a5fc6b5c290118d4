#include "anisoflow/transport/curve.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <zmq_addon.hpp>

namespace anisoflow::transport {
namespace {

// RFC 27: the endpoint libzmq asks, one handler per context.
constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr std::chrono::milliseconds kZapPoll{100};  // how often the handler checks for stop

std::string certificate_text(const CurveKeyPair& keys, bool secret) {
    const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    std::string text = fmt::format(
        "#   ****  Generated on {:%Y-%m-%d %H:%M:%S} UTC by anisoflow keys  ****\n", now);
    if (secret) {
        text +=
            "#   ZeroMQ CURVE **Secret** Certificate\n"
            "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n";
    } else {
        text +=
            "#   ZeroMQ CURVE Public Certificate\n"
            "#   Exchange securely, or use a secure mechanism to verify the contents\n"
            "#   of this file after exchange.\n";
    }
    text += "\nmetadata\ncurve\n";
    text += fmt::format("    public-key = \"{}\"\n", keys.public_key);
    if (secret) {
        text += fmt::format("    secret-key = \"{}\"\n", keys.secret_key);
    }
    return text;
}

// The value of `name = "value"` on a certificate line, as pyzmq's loader reads it: after the
// first '=', without spaces and quotes (Z85 has '=' but neither quote).
std::optional<std::string> certificate_value(std::string_view line, std::string_view name) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line.substr(first, name.size()) != name) {
        return std::nullopt;
    }
    const auto equals = line.find('=', first + name.size());
    if (equals == std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view value = line.substr(equals + 1);
    const auto begin = value.find_first_not_of(" \t\"'");
    const auto end = value.find_last_not_of(" \t\"'\r");
    if (begin == std::string_view::npos) {
        return std::string();
    }
    return std::string(value.substr(begin, end - begin + 1));
}

Result<void> write_new_file(const std::filesystem::path& path, const std::string& text,
                            std::filesystem::perms perms) {
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: exists; keys are never overwritten (remove it first if you mean it)",
                    path.string());
    }
    {
        std::ofstream out(path, std::ios::binary);
        if (!out) {
            return fail(ErrorCode::kIo, "{}: cannot create", path.string());
        }
        // Restrict before writing: a secret key is never readable by others, even briefly.
        std::filesystem::permissions(path, perms, ec);
        if (ec) {
            return fail(ErrorCode::kIo, "{}: cannot set permissions: {}", path.string(),
                        ec.message());
        }
        out << text;
        if (!out.flush()) {
            return fail(ErrorCode::kIo, "{}: cannot write", path.string());
        }
    }
    return {};
}

}  // namespace

bool is_curve_key(std::string_view key) {
    if (key.size() != kCurveKeyChars) {
        return false;
    }
    const std::string text(key);
    std::array<std::uint8_t, 32> bytes{};
    return zmq_z85_decode(bytes.data(), text.c_str()) != nullptr;
}

Result<CurveKeyPair> generate_curve_key_pair() {
    std::array<char, kCurveKeyChars + 1> public_key{};
    std::array<char, kCurveKeyChars + 1> secret_key{};
    if (zmq_curve_keypair(public_key.data(), secret_key.data()) != 0) {
        return fail(ErrorCode::kUnsupported,
                    "this libzmq cannot make CURVE keys (built without libsodium?): {}",
                    zmq_strerror(zmq_errno()));
    }
    return CurveKeyPair{public_key.data(), secret_key.data()};
}

Result<std::pair<std::filesystem::path, std::filesystem::path>> write_curve_certificates(
    const std::filesystem::path& directory, const std::string& name, const CurveKeyPair& keys) {
    if (name.empty() || name.find('/') != std::string::npos || name.front() == '.') {
        return fail(ErrorCode::kInvalidArgument,
                    "certificate name '{}' must be a plain file name (e.g. the service's host)",
                    name);
    }
    if (!is_curve_key(keys.public_key) || !is_curve_key(keys.secret_key)) {
        return fail(ErrorCode::kInvalidArgument, "certificate {}: malformed key pair", name);
    }
    std::error_code ec;
    if (!std::filesystem::is_directory(directory, ec)) {
        return fail(ErrorCode::kInvalidArgument, "{}: not a directory", directory.string());
    }
    const auto public_path = directory / (name + ".key");
    const auto secret_path = directory / (name + ".key_secret");
    using std::filesystem::perms;
    if (auto ok = write_new_file(secret_path, certificate_text(keys, true),
                                 perms::owner_read | perms::owner_write);
        !ok) {
        return tl::unexpected(ok.error());
    }
    if (auto ok = write_new_file(
            public_path, certificate_text(keys, false),
            perms::owner_read | perms::owner_write | perms::group_read | perms::others_read);
        !ok) {
        return tl::unexpected(ok.error());
    }
    return std::pair{public_path, secret_path};
}

Result<CurveKeyPair> read_curve_certificate(const std::filesystem::path& path, bool need_secret) {
    std::ifstream in(path);
    if (!in) {
        return fail(ErrorCode::kNotFound, "{}: cannot read the CURVE certificate", path.string());
    }
    CurveKeyPair keys;
    std::string line;
    while (std::getline(in, line)) {
        if (auto value = certificate_value(line, "public-key")) {
            keys.public_key = std::move(*value);
        } else if (auto secret = certificate_value(line, "secret-key")) {
            keys.secret_key = std::move(*secret);
        }
    }
    if (!is_curve_key(keys.public_key)) {
        return fail(ErrorCode::kCorrupt, "{}: public-key {} (expected 40 Z85 characters)",
                    path.string(), keys.public_key.empty() ? "missing" : "malformed");
    }
    if (need_secret && !is_curve_key(keys.secret_key)) {
        return fail(ErrorCode::kCorrupt,
                    "{}: secret-key {} (expected 40 Z85 characters; is this the public "
                    "certificate? the secret one ends in .key_secret)",
                    path.string(), keys.secret_key.empty() ? "missing" : "malformed");
    }
    return keys;
}

Result<std::vector<std::string>> read_authorized_keys(const std::filesystem::path& directory) {
    std::error_code ec;
    if (!std::filesystem::is_directory(directory, ec)) {
        return fail(ErrorCode::kNotFound, "{}: not a directory of client certificates",
                    directory.string());
    }
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(directory, ec)) {
        if (entry.is_regular_file() && entry.path().extension() == ".key") {
            files.push_back(entry.path());
        }
    }
    if (ec) {
        return fail(ErrorCode::kIo, "{}: cannot list: {}", directory.string(), ec.message());
    }
    std::sort(files.begin(), files.end());
    std::vector<std::string> keys;
    for (const auto& file : files) {
        auto certificate = read_curve_certificate(file, false);
        if (!certificate) {
            return tl::unexpected(certificate.error());
        }
        keys.push_back(std::move(certificate->public_key));
    }
    if (keys.empty()) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: no *.key certificate; a service with CURVE on would admit no client",
                    directory.string());
    }
    return keys;
}

Result<std::unique_ptr<CurveAuthenticator>> CurveAuthenticator::start(
    zmq::context_t& context, std::vector<std::string> authorized_public_keys) {
    for (const std::string& key : authorized_public_keys) {
        if (!is_curve_key(key)) {
            return fail(ErrorCode::kInvalidArgument, "authorized key '{}' is not a CURVE key", key);
        }
    }
    std::unique_ptr<CurveAuthenticator> authenticator(new CurveAuthenticator());
    authenticator->authorized_ = std::move(authorized_public_keys);
    std::sort(authenticator->authorized_.begin(), authenticator->authorized_.end());
    try {
        zmq::socket_t socket(context, zmq::socket_type::rep);
        socket.set(zmq::sockopt::linger, 0);
        socket.bind(kZapEndpoint);
        authenticator->thread_ =
            std::thread([self = authenticator.get(), s = std::move(socket)]() mutable {
                self->serve(std::move(s));
            });
    } catch (const zmq::error_t& error) {
        return fail(ErrorCode::kIo,
                    "cannot bind the ZAP handler ({}; is another one running in this "
                    "context?): {}",
                    kZapEndpoint, error.what());
    }
    return authenticator;
}

CurveAuthenticator::~CurveAuthenticator() {
    stopping_ = true;
    if (thread_.joinable()) {
        thread_.join();
    }
}

void CurveAuthenticator::serve(zmq::socket_t socket) {
    while (!stopping_.load()) {
        std::vector<zmq::message_t> request;
        try {
            std::array<zmq::pollitem_t, 1> items{{{socket.handle(), 0, ZMQ_POLLIN, 0}}};
            if (zmq::poll(items, kZapPoll) == 0) {
                continue;
            }
            if (!zmq::recv_multipart(socket, std::back_inserter(request))) {
                continue;
            }
        } catch (const zmq::error_t&) {
            return;  // the context is terminating
        }
        // RFC 27 request: version, request id, domain, address, identity, mechanism,
        // credentials (CURVE: the client's 32-byte public key).
        bool admit = false;
        if (request.size() >= 7 && request[0].to_string_view() == "1.0" &&
            request[5].to_string_view() == "CURVE" && request[6].size() == 32) {
            std::array<char, kCurveKeyChars + 1> z85{};
            if (zmq_z85_encode(z85.data(), static_cast<const std::uint8_t*>(request[6].data()),
                               32) != nullptr) {
                admit = std::binary_search(authorized_.begin(), authorized_.end(),
                                           std::string(z85.data()));
            }
        }
        (admit ? admitted_ : refused_).fetch_add(1);
        const std::string request_id = request.size() > 1 ? request[1].to_string() : std::string();
        std::array<zmq::const_buffer, 6> reply = {
            zmq::str_buffer("1.0"),
            zmq::buffer(request_id),
            admit ? zmq::str_buffer("200") : zmq::str_buffer("400"),
            admit ? zmq::str_buffer("OK") : zmq::str_buffer("client key not authorized"),
            zmq::str_buffer(""),
            zmq::str_buffer(""),
        };
        try {
            zmq::send_multipart(socket, reply);
        } catch (const zmq::error_t&) {
            return;
        }
    }
}

}  // namespace anisoflow::transport
