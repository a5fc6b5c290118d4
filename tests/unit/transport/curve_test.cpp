// CURVE between real sockets over tcp loopback (docs/security.md): certificates written and read
// back, an authorized client's frames arrive, and a plain peer, a client whose key is not
// listed and a client that trusts another server key are refused.

#include "anisoflow/transport/curve.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "anisoflow/testing/test_paths.hpp"
#include "anisoflow/transport/socket.hpp"

namespace anisoflow::transport {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

CurveKeyPair new_keys() {
    auto keys = generate_curve_key_pair();
    EXPECT_TRUE(keys.has_value()) << keys.error().message;
    return *keys;
}

TEST(CurveCertificates, RoundTripInZeroMqsFormatWithTheSecretKeptPrivate) {
    const auto dir = testing::scratch_dir();
    const CurveKeyPair keys = new_keys();
    EXPECT_TRUE(is_curve_key(keys.public_key));
    EXPECT_NE(keys.public_key, keys.secret_key);
    auto written = write_curve_certificates(dir, "reduce-host", keys);
    ASSERT_TRUE(written.has_value()) << written.error().message;
    const auto& [public_path, secret_path] = *written;
    EXPECT_EQ(public_path.filename(), "reduce-host.key");
    EXPECT_EQ(secret_path.filename(), "reduce-host.key_secret");
    using std::filesystem::perms;
    EXPECT_EQ(std::filesystem::status(secret_path).permissions() & perms::all,
              perms::owner_read | perms::owner_write);

    auto secret = read_curve_certificate(secret_path, true);
    ASSERT_TRUE(secret.has_value()) << secret.error().message;
    EXPECT_EQ(secret->public_key, keys.public_key);
    EXPECT_EQ(secret->secret_key, keys.secret_key);
    auto shared = read_curve_certificate(public_path, false);
    ASSERT_TRUE(shared.has_value());
    EXPECT_TRUE(shared->secret_key.empty()) << "the public certificate leaks the secret key";
    const auto no_secret = read_curve_certificate(public_path, true);
    ASSERT_FALSE(no_secret.has_value());
    EXPECT_THAT(no_secret.error().message, HasSubstr("reduce-host.key: secret-key missing"));

    // Never overwritten.
    const auto again = write_curve_certificates(dir, "reduce-host", new_keys());
    ASSERT_FALSE(again.has_value());
    EXPECT_THAT(again.error().message, HasSubstr("exists"));
    EXPECT_EQ(read_curve_certificate(secret_path, true)->secret_key, keys.secret_key);
}

TEST(CurveCertificates, ReadsPyzmqStyleFilesAndNamesWhatIsWrong) {
    const auto dir = testing::scratch_dir();
    const CurveKeyPair keys = new_keys();
    // As pyzmq's zmq.auth.create_certificates writes it (single quotes are tolerated too).
    {
        std::ofstream out(dir / "client.key_secret");
        out << "#   ZeroMQ CURVE **Secret** Certificate\n\nmetadata\ncurve\n    public-key = \""
            << keys.public_key << "\"\n    secret-key = '" << keys.secret_key << "'\n";
    }
    auto read = read_curve_certificate(dir / "client.key_secret", true);
    ASSERT_TRUE(read.has_value()) << read.error().message;
    EXPECT_EQ(read->public_key, keys.public_key);
    EXPECT_EQ(read->secret_key, keys.secret_key);
    {
        std::ofstream out(dir / "bad.key");
        out << "curve\n    public-key = \"tooshort\"\n";
    }
    const auto bad = read_curve_certificate(dir / "bad.key", false);
    ASSERT_FALSE(bad.has_value());
    EXPECT_THAT(bad.error().message, HasSubstr("bad.key: public-key malformed"));
    const auto listed = read_authorized_keys(dir);
    ASSERT_FALSE(listed.has_value());
    EXPECT_THAT(listed.error().message, HasSubstr("bad.key"));
    const auto empty = read_authorized_keys(testing::scratch_dir() / "none");
    EXPECT_FALSE(empty.has_value());
    EXPECT_FALSE(write_curve_certificates(dir, "../escape", keys).has_value());
}

// A CURVE PULL server with an authenticator admitting `client_keys` only.
struct Server {
    zmq::context_t context;
    CurveKeyPair keys = new_keys();
    std::unique_ptr<CurveAuthenticator> authenticator;
    zmq::socket_t socket;
    std::string endpoint;

    explicit Server(const std::vector<std::string>& client_keys) {
        auto started = CurveAuthenticator::start(context, client_keys);
        EXPECT_TRUE(started.has_value()) << started.error().message;
        authenticator = std::move(*started);
        SocketOptions options;
        options.curve = CurveSocketKeys{keys, ""};
        auto opened = open_socket(context, zmq::socket_type::pull, "@tcp://127.0.0.1:*", options);
        EXPECT_TRUE(opened.has_value()) << opened.error().message;
        socket = std::move(*opened);
        endpoint = socket.get(zmq::sockopt::last_endpoint);
    }
    ~Server() {
        socket.close();
        authenticator.reset();
    }
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;
    Server(Server&&) = delete;
    Server& operator=(Server&&) = delete;

    // Whether `text` arrives within `wait`.
    bool receives(const std::string& text, std::chrono::milliseconds wait) {
        auto got = receive(socket, wait);
        EXPECT_TRUE(got.has_value());
        return got.has_value() && got->has_value() && (*got)->size() == 1 &&
               (**got)[0].to_string() == text;
    }
};

// Sends `text` from a PUSH client with `options` to the server's endpoint.
void send_from(zmq::context_t& context, const std::string& endpoint, const SocketOptions& options,
               const std::string& text) {
    auto client = open_socket(context, zmq::socket_type::push, ">" + endpoint, options);
    ASSERT_TRUE(client.has_value()) << client.error().message;
    Multipart parts;
    parts.emplace_back(text.data(), text.size());
    // Queued locally whether or not the handshake succeeds; linger 0 drops it on close.
    ASSERT_TRUE(send(*client, parts, 200ms).has_value());
    std::this_thread::sleep_for(300ms);  // time for the handshake (and the refusal)
}

TEST(CurveSockets, AnAuthorizedClientGetsThroughAndOthersAreRefused) {
    const CurveKeyPair known = new_keys();
    const CurveKeyPair stranger = new_keys();
    Server server({known.public_key});
    zmq::context_t clients;

    SocketOptions authorized;
    authorized.curve = CurveSocketKeys{known, server.keys.public_key};
    send_from(clients, server.endpoint, authorized, "from the known host");
    EXPECT_TRUE(server.receives("from the known host", 2000ms));
    EXPECT_EQ(server.authenticator->admitted(), 1U);

    // A plain peer: no CURVE handshake at all.
    send_from(clients, server.endpoint, SocketOptions{}, "plain");
    EXPECT_FALSE(server.receives("plain", 300ms));

    // A client with keys the server was not told about.
    SocketOptions unknown;
    unknown.curve = CurveSocketKeys{stranger, server.keys.public_key};
    send_from(clients, server.endpoint, unknown, "stranger");
    EXPECT_FALSE(server.receives("stranger", 300ms));
    EXPECT_GE(server.authenticator->refused(), 1U);

    // A known client that trusts another server key (a man in the middle would hold it).
    SocketOptions wrong_server;
    wrong_server.curve = CurveSocketKeys{known, new_keys().public_key};
    send_from(clients, server.endpoint, wrong_server, "misdirected");
    EXPECT_FALSE(server.receives("misdirected", 300ms));

    // The server still serves the authorized client afterwards.
    send_from(clients, server.endpoint, authorized, "still there");
    EXPECT_TRUE(server.receives("still there", 2000ms));
}

TEST(CurveSockets, MissingKeysAreRefusedBeforeAnySocketIsOpened) {
    zmq::context_t context;
    SocketOptions options;
    options.curve = CurveSocketKeys{new_keys(), ""};
    const auto client = open_socket(context, zmq::socket_type::push, ">tcp://127.0.0.1:1", options);
    ASSERT_FALSE(client.has_value());
    EXPECT_THAT(client.error().message, HasSubstr("public key of the service it connects to"));
    options.curve->own.secret_key = "x";
    const auto server = open_socket(context, zmq::socket_type::pull, "@tcp://127.0.0.1:*", options);
    ASSERT_FALSE(server.has_value());
    EXPECT_THAT(server.error().message, HasSubstr("key pair"));
}

}  // namespace
}  // namespace anisoflow::transport
