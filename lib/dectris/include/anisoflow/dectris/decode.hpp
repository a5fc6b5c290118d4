#pragma once
// Decoders of DECTRIS SIMPLON stream messages (no sockets: a message is its parts as byte
// spans) and of image payloads into pixels. Every malformed message is an error naming the
// message type and key at fault; nothing aborts.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "anisoflow/core/result.hpp"
#include "anisoflow/dectris/messages.hpp"

namespace anisoflow::dectris {

using ByteSpan = std::span<const std::byte>;

/// Largest image accepted, in pixels (2^28: sixteen times an EIGER2 16M), so that a corrupt
/// shape cannot ask for gigabytes.
inline constexpr std::size_t kMaxPixelsPerImage = std::size_t{1} << 28;

/// Decodes one Stream v1 multipart message (JSON parts plus binary data parts).
[[nodiscard]] Result<Message> decode_v1(std::span<const ByteSpan> parts);

/// Decodes one Stream v2 message (a single CBOR item, with or without the self-describe tag).
[[nodiscard]] Result<Message> decode_v2(ByteSpan message);

/// The uncompressed little-endian pixel bytes of a channel.
[[nodiscard]] Result<std::vector<std::byte>> decode_bytes(const ChannelData& channel);

/// The pixels of a channel widened to uint32 (values unchanged, including the saturation or
/// no-data marker 2^bits - 1).
[[nodiscard]] Result<std::vector<std::uint32_t>> decode_pixels(const ChannelData& channel);

/// The pixels of one channel of an image (channel 0 by default).
[[nodiscard]] Result<std::vector<std::uint32_t>> decode_pixels(const Image& image,
                                                               std::size_t channel = 0);

}  // namespace anisoflow::dectris
