#include "anisoflow/metrics/scrape.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <string>
#include <system_error>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace anisoflow::metrics {

namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

Result<std::string> scrape(std::string_view host, std::uint16_t port,
                           std::chrono::milliseconds timeout, std::string_view path) {
    const std::string url =
        "http://" + std::string(host) + ":" + std::to_string(port) + std::string(path);
    // Beast's synchronous calls honour the stream's expiry: the whole exchange shares `timeout`,
    // so a service that accepted the connection but never answers cannot hang the caller.
    boost::asio::io_context io;
    tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    beast::error_code ec;
    const auto endpoints = resolver.resolve(std::string(host), std::to_string(port), ec);
    if (ec) {
        return fail(ErrorCode::kIo, "GET {}: cannot resolve {}: {}", url, host, ec.message());
    }
    stream.expires_after(timeout);
    stream.connect(endpoints, ec);
    if (ec) {
        return fail(ErrorCode::kIo, "GET {}: cannot connect: {}", url, ec.message());
    }
    http::request<http::empty_body> request{http::verb::get, std::string(path), 11};
    request.set(http::field::host, std::string(host));
    request.set(http::field::connection, "close");
    http::write(stream, request, ec);
    if (ec) {
        return fail(ErrorCode::kIo, "GET {}: request not sent: {}", url, ec.message());
    }
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response, ec);
    if (ec) {
        return fail(ErrorCode::kIo, "GET {}: no complete answer within {} ms: {}", url,
                    timeout.count(), ec.message());
    }
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);  // the peer may have closed first
    if (response.result() != http::status::ok) {
        return fail(ErrorCode::kIo, "GET {}: HTTP status {}", url, response.result_int());
    }
    return std::move(response.body());
}

namespace {

// Prometheus writes +Inf, -Inf and NaN for special values; from_chars reads "inf" and "nan".
bool parse_sample_value(std::string_view text, double& value) {
    if (text == "+Inf" || text == "Inf") {
        value = std::numeric_limits<double>::infinity();
        return true;
    }
    if (text == "-Inf") {
        value = -std::numeric_limits<double>::infinity();
        return true;
    }
    if (text == "NaN") {
        value = std::numeric_limits<double>::quiet_NaN();
        return true;
    }
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    return ec == std::errc{} && end == text.data() + text.size();
}

}  // namespace

Result<std::map<std::string, double>> parse_exposition(std::string_view text) {
    std::map<std::string, double> samples;
    std::size_t line_number = 0;
    while (!text.empty()) {
        const std::size_t newline = text.find('\n');
        std::string_view line = text.substr(0, newline);
        text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
        ++line_number;
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
            line.remove_suffix(1);
        }
        if (line.empty() || line.front() == '#') {
            continue;
        }
        // The name ends at the closing brace of the labels (label values may hold spaces).
        std::size_t name_end = line.find_first_of(" {");
        if (name_end != std::string_view::npos && line[name_end] == '{') {
            const std::size_t close = line.find("} ", name_end);
            name_end = close == std::string_view::npos ? close : close + 1;
        }
        if (name_end == std::string_view::npos) {
            return fail(ErrorCode::kParse, "metrics line {}: no value: \"{}\"", line_number, line);
        }
        std::string_view rest = line.substr(name_end + 1);
        rest = rest.substr(0, rest.find(' '));  // drop the optional timestamp
        double value = 0.0;
        if (!parse_sample_value(rest, value)) {
            return fail(ErrorCode::kParse, "metrics line {}: value \"{}\" is not a number",
                        line_number, rest);
        }
        samples[std::string(line.substr(0, name_end))] = value;
    }
    return samples;
}

}  // namespace anisoflow::metrics
