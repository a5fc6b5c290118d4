#pragma once
// Checks shared by the v1 and v2 decoders: a channel's shape, type and payload agree.

#include <cstddef>

#include "anisoflow/core/result.hpp"
#include "anisoflow/dectris/messages.hpp"

namespace anisoflow::dectris::detail {

/// Bytes of an image of this shape and type; an error for an empty or oversized shape.
[[nodiscard]] Result<std::size_t> image_size_bytes(Shape shape, PixelType type);

/// Sets uncompressed_size_bytes from shape and type, then checks that the shape is sane and that
/// the payload (or its filter header) has that size.
[[nodiscard]] Result<void> finish_channel(ChannelData& channel);

}  // namespace anisoflow::dectris::detail
