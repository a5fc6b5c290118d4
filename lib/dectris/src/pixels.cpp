#include <cstring>

#include "anisoflow/codec/bitshuffle.hpp"
#include "anisoflow/codec/lz4.hpp"
#include "anisoflow/dectris/decode.hpp"

#include "channel_check.hpp"

namespace anisoflow::dectris {

std::string_view to_string(Encoding encoding) {
    switch (encoding) {
        case Encoding::kRaw:
            return "raw";
        case Encoding::kLz4Block:
            return "lz4 block";
        case Encoding::kLz4Hdf5:
            return "lz4 (HDF5 framing)";
        case Encoding::kBslz4:
            return "bitshuffle-lz4";
    }
    return "unknown";
}

namespace detail {

Result<std::size_t> image_size_bytes(Shape shape, PixelType type) {
    if (shape.width_px == 0 || shape.height_px == 0 || shape.width_px > kMaxPixelsPerImage ||
        shape.height_px > kMaxPixelsPerImage / shape.width_px) {
        return fail(ErrorCode::kCorrupt, "shape {}x{} is empty or larger than {} pixels",
                    shape.width_px, shape.height_px, kMaxPixelsPerImage);
    }
    return shape.pixel_count() * pixel_size_bytes(type);
}

Result<void> finish_channel(ChannelData& channel) {
    const Shape shape = channel.shape;
    auto size = image_size_bytes(shape, channel.pixel_type);
    if (!size) {
        return tl::unexpected(size.error());
    }
    channel.uncompressed_size_bytes = *size;
    const std::size_t payload_bytes = channel.payload.size();
    switch (channel.encoding) {
        case Encoding::kRaw:
            if (payload_bytes != channel.uncompressed_size_bytes) {
                return fail(ErrorCode::kCorrupt,
                            "raw payload of {} bytes disagrees with shape {}x{} of {} ({} bytes)",
                            payload_bytes, shape.width_px, shape.height_px,
                            to_string(channel.pixel_type), channel.uncompressed_size_bytes);
            }
            return {};
        case Encoding::kLz4Block:
            if (payload_bytes == 0) {
                return fail(ErrorCode::kCorrupt, "empty lz4 payload");
            }
            return {};
        case Encoding::kLz4Hdf5:
        case Encoding::kBslz4: {
            auto header = codec::read_filter_header(channel.payload);
            if (!header) {
                return tl::unexpected(header.error().with_context(to_string(channel.encoding)));
            }
            if (header->uncompressed_size_bytes != channel.uncompressed_size_bytes) {
                return fail(ErrorCode::kCorrupt,
                            "{} header says {} bytes but shape {}x{} of {} needs {}",
                            to_string(channel.encoding), header->uncompressed_size_bytes,
                            shape.width_px, shape.height_px, to_string(channel.pixel_type),
                            channel.uncompressed_size_bytes);
            }
            return {};
        }
    }
    return {};
}

}  // namespace detail

Result<std::vector<std::byte>> decode_bytes(const ChannelData& channel) {
    auto size = detail::image_size_bytes(channel.shape, channel.pixel_type);
    if (!size) {
        return tl::unexpected(size.error());
    }
    if (*size != channel.uncompressed_size_bytes) {
        return fail(ErrorCode::kInvalidArgument,
                    "channel '{}': uncompressed size {} bytes disagrees with its shape ({} bytes)",
                    channel.name, channel.uncompressed_size_bytes, *size);
    }
    // A compressed payload cannot decode to more than kLz4MaxExpansion times its size: refuse
    // before allocating what a tiny hostile message claims (up to 1 GiB per channel).
    if (channel.encoding != Encoding::kRaw &&
        channel.uncompressed_size_bytes > (channel.payload.size() + 1) * codec::kLz4MaxExpansion) {
        return fail(ErrorCode::kCorrupt,
                    "channel '{}': {} compressed bytes cannot decode to the {} bytes claimed",
                    channel.name, channel.payload.size(), channel.uncompressed_size_bytes);
    }
    if (channel.encoding == Encoding::kRaw &&
        channel.payload.size() != channel.uncompressed_size_bytes) {
        return fail(ErrorCode::kCorrupt, "raw payload of {} bytes, expected {}",
                    channel.payload.size(), channel.uncompressed_size_bytes);
    }
    std::vector<std::byte> out(channel.uncompressed_size_bytes);
    Result<void> status;
    switch (channel.encoding) {
        case Encoding::kRaw:
            if (channel.payload.size() != out.size()) {
                return fail(ErrorCode::kCorrupt, "raw payload of {} bytes, expected {}",
                            channel.payload.size(), out.size());
            }
            std::memcpy(out.data(), channel.payload.data(), out.size());
            break;
        case Encoding::kLz4Block:
            status = codec::lz4_decompress_block_into(channel.payload, out);
            break;
        case Encoding::kLz4Hdf5:
            status = codec::lz4_hdf5_decompress_into(channel.payload, out);
            break;
        case Encoding::kBslz4:
            status = codec::bslz4_decompress_into(channel.payload,
                                                  pixel_size_bytes(channel.pixel_type), out);
            break;
    }
    if (!status) {
        return tl::unexpected(status.error());
    }
    return out;
}

Result<std::vector<std::uint32_t>> decode_pixels(const ChannelData& channel) {
    auto bytes = decode_bytes(channel);
    if (!bytes) {
        return tl::unexpected(bytes.error());
    }
    const std::size_t element_size = pixel_size_bytes(channel.pixel_type);
    const std::size_t n = bytes->size() / element_size;
    std::vector<std::uint32_t> pixels(n);
    const std::byte* in = bytes->data();
    // Little-endian on the wire, assembled byte by byte so the host order does not matter.
    for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t value = 0;
        for (std::size_t b = element_size; b-- > 0;) {
            value = (value << 8U) | std::to_integer<std::uint32_t>(in[i * element_size + b]);
        }
        pixels[i] = value;
    }
    return pixels;
}

Result<std::vector<std::uint32_t>> decode_pixels(const Image& image, std::size_t channel) {
    if (channel >= image.channels.size()) {
        return fail(ErrorCode::kNotFound, "image {} has {} channels, no channel {}",
                    image.image_number, image.channels.size(), channel);
    }
    auto pixels = decode_pixels(image.channels[channel]);
    if (!pixels) {
        return tl::unexpected(pixels.error().with_context(
            fmt::format("series {} image {}", image.series_id, image.image_number)));
    }
    return pixels;
}

}  // namespace anisoflow::dectris
