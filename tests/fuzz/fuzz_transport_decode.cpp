// libFuzzer target: transport::decode(), the entry point every service calls on a received
// multipart message, then what the services do with an accepted one (pixels of a frame, the
// RunStart's experiment check, cake and curve parts). Input: the parts joined by kPartSeparator.

#include <cstddef>
#include <cstdint>
#include <utility>
#include <variant>
#include <vector>

#include "anisoflow/codec/bitshuffle.hpp"
#include "anisoflow/codec/lz4.hpp"
#include "anisoflow/transport/experiment.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/payload.hpp"

#include "fuzz_support.hpp"

namespace {

using namespace anisoflow;  // NOLINT(google-build-using-namespace)

/// Decoding a compressed frame allocates what the header declares (up to kMaxFrameBytes, by
/// design); the harness stops short of that so an input runs in milliseconds.
constexpr std::uint64_t kMaxDecodedBytes = std::uint64_t{16} << 20;

void use_frame(const transport::FrameMessage& message) {
    const auto& header = message.header;
    if (header.encoding() == transport::pb::ENCODING_RAW) {
        (void)transport::to_frame(message);
        return;
    }
    if (header.uncompressed_size_bytes() > kMaxDecodedBytes) {
        return;
    }
    const auto type = transport::to_pixel_type(header.dtype());
    std::vector<std::byte> out(header.uncompressed_size_bytes());
    const auto payload = transport::bytes_of(message.payload);
    if (header.encoding() == transport::pb::ENCODING_BSLZ4 && type) {
        (void)codec::bslz4_decompress_into(payload, pixel_size_bytes(*type), out);
    } else {
        (void)codec::lz4_hdf5_decompress_into(payload, out);
        (void)codec::lz4_decompress_block_into(payload, out);
    }
}

}  // namespace

// libFuzzer's entry point, named by libFuzzer.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    transport::Multipart parts;
    for (const auto part : fuzz::split_parts(fuzz::as_bytes(data, size))) {
        parts.emplace_back(part.data(), part.size());
    }
    auto decoded = transport::decode(std::move(parts));
    if (!decoded) {
        (void)transport::to_string(decoded.error().reason);
        return 0;
    }
    (void)transport::message_type_name(*decoded);
    if (const auto* frame = std::get_if<transport::FrameMessage>(&*decoded)) {
        use_frame(*frame);
    } else if (const auto* start = std::get_if<transport::RunStartMessage>(&*decoded)) {
        if (transport::experiment_problems(start->start.config()).empty()) {
            (void)transport::to_poni(start->start.config().geometry());
        }
    } else if (const auto* reduced = std::get_if<transport::ReducedMessage>(&*decoded)) {
        for (const auto& part : reduced->parts) {
            (void)transport::copy_values<double>(part);
        }
    } else if (const auto* result = std::get_if<transport::ResultMessage>(&*decoded)) {
        for (const auto& curve : result->curves) {
            (void)transport::aligned_values<double>(curve);
        }
    }
    return 0;
}
