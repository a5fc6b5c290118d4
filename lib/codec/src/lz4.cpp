#include "anisoflow/codec/lz4.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include <lz4.h>

#include "byte_order.hpp"

namespace anisoflow::codec {
namespace {

const char* as_chars(std::span<const std::byte> bytes) {
    return reinterpret_cast<const char*>(bytes.data());
}

char* as_chars(std::span<std::byte> bytes) { return reinterpret_cast<char*>(bytes.data()); }

/// The HDF5 LZ4 filter stores sizes as signed 32-bit integers.
constexpr std::size_t kMaxFilterBlockBytes = std::numeric_limits<std::int32_t>::max();

}  // namespace

Result<void> lz4_decompress_block_into(std::span<const std::byte> compressed,
                                       std::span<std::byte> out) {
    if (compressed.size() > static_cast<std::size_t>(LZ4_MAX_INPUT_SIZE) ||
        out.size() > static_cast<std::size_t>(LZ4_MAX_INPUT_SIZE)) {
        return fail(ErrorCode::kUnsupported,
                    "lz4 block of {} bytes decoding to {} bytes exceeds the LZ4 limit of {} bytes",
                    compressed.size(), out.size(), LZ4_MAX_INPUT_SIZE);
    }
    // LZ4_decompress_safe never reads past `compressed` nor writes past `out`.
    char empty_target = 0;
    char* target = out.empty() ? &empty_target : as_chars(out);
    const int decoded =
        LZ4_decompress_safe(as_chars(compressed), target, static_cast<int>(compressed.size()),
                            static_cast<int>(out.size()));
    if (decoded < 0) {
        return fail(ErrorCode::kCorrupt,
                    "lz4 block of {} bytes is corrupt or decodes to more than {} bytes",
                    compressed.size(), out.size());
    }
    if (static_cast<std::size_t>(decoded) != out.size()) {
        return fail(ErrorCode::kCorrupt, "lz4 block of {} bytes decodes to {} bytes, expected {}",
                    compressed.size(), decoded, out.size());
    }
    return {};
}

Result<std::vector<std::byte>> lz4_decompress_block(std::span<const std::byte> compressed,
                                                    std::size_t decompressed_size_bytes) {
    if (decompressed_size_bytes > kLz4MaxExpansion * compressed.size() + 1) {
        return fail(ErrorCode::kCorrupt,
                    "lz4 block of {} bytes cannot decode to {} bytes (LZ4 expands at most {}x)",
                    compressed.size(), decompressed_size_bytes, kLz4MaxExpansion);
    }
    std::vector<std::byte> out(decompressed_size_bytes);
    if (auto status = lz4_decompress_block_into(compressed, out); !status) {
        return tl::unexpected(status.error());
    }
    return out;
}

Result<std::vector<std::byte>> lz4_compress_block(std::span<const std::byte> data) {
    if (data.size() > static_cast<std::size_t>(LZ4_MAX_INPUT_SIZE)) {
        return fail(ErrorCode::kInvalidArgument,
                    "lz4: {} bytes exceed the LZ4 block limit of {} bytes", data.size(),
                    LZ4_MAX_INPUT_SIZE);
    }
    const int bound = LZ4_compressBound(static_cast<int>(data.size()));
    std::vector<std::byte> out(static_cast<std::size_t>(bound));
    const int written = LZ4_compress_default(as_chars(data), as_chars(std::span<std::byte>(out)),
                                             static_cast<int>(data.size()), bound);
    if (written <= 0) {
        return fail(ErrorCode::kIo, "lz4: compressing {} bytes failed", data.size());
    }
    out.resize(static_cast<std::size_t>(written));
    return out;
}

Result<FilterHeader> read_filter_header(std::span<const std::byte> framed) {
    if (framed.size() < kFilterHeaderSizeBytes) {
        return fail(ErrorCode::kCorrupt, "{} bytes are too short for the {}-byte filter header",
                    framed.size(), kFilterHeaderSizeBytes);
    }
    return FilterHeader{detail::read_u64_be(framed.first<8>()),
                        detail::read_u32_be(framed.subspan<8, 4>())};
}

Result<void> lz4_hdf5_decompress_into(std::span<const std::byte> framed, std::span<std::byte> out) {
    auto header = read_filter_header(framed);
    if (!header) {
        return tl::unexpected(header.error().with_context("lz4-hdf5"));
    }
    if (header->uncompressed_size_bytes != out.size()) {
        return fail(ErrorCode::kCorrupt, "lz4-hdf5: header says {} bytes, expected {}",
                    header->uncompressed_size_bytes, out.size());
    }
    const std::size_t block_bytes = header->block_size_bytes;
    if (!out.empty() && (block_bytes == 0 || block_bytes > kMaxFilterBlockBytes)) {
        return fail(ErrorCode::kCorrupt, "lz4-hdf5: invalid block size {} bytes in the header",
                    block_bytes);
    }
    std::size_t pos = kFilterHeaderSizeBytes;
    std::size_t produced = 0;
    for (std::size_t block = 0; produced < out.size(); ++block) {
        const std::size_t this_block = std::min(block_bytes, out.size() - produced);
        if (framed.size() - pos < 4) {
            return fail(ErrorCode::kCorrupt, "lz4-hdf5: truncated before block {} at byte {}",
                        block, pos);
        }
        const std::size_t stored = detail::read_u32_be(framed.subspan(pos).first<4>());
        pos += 4;
        if (stored > framed.size() - pos) {
            return fail(ErrorCode::kCorrupt,
                        "lz4-hdf5: block {} claims {} bytes but only {} are left", block, stored,
                        framed.size() - pos);
        }
        const auto source = framed.subspan(pos, stored);
        const auto target = out.subspan(produced, this_block);
        if (stored == this_block) {
            // The filter stores a block that LZ4 would not shrink as it is.
            std::memcpy(target.data(), source.data(), this_block);
        } else if (auto status = lz4_decompress_block_into(source, target); !status) {
            return tl::unexpected(
                status.error().with_context(fmt::format("lz4-hdf5 block {}", block)));
        }
        pos += stored;
        produced += this_block;
    }
    if (pos != framed.size()) {
        return fail(ErrorCode::kCorrupt, "lz4-hdf5: {} trailing bytes after the last block",
                    framed.size() - pos);
    }
    return {};
}

Result<std::vector<std::byte>> lz4_hdf5_decompress(std::span<const std::byte> framed) {
    auto header = read_filter_header(framed);
    if (!header) {
        return tl::unexpected(header.error().with_context("lz4-hdf5"));
    }
    if (header->uncompressed_size_bytes > kLz4MaxExpansion * framed.size()) {
        return fail(ErrorCode::kCorrupt,
                    "lz4-hdf5: header claims {} bytes from {} compressed bytes, more than LZ4 can "
                    "expand",
                    header->uncompressed_size_bytes, framed.size());
    }
    std::vector<std::byte> out(header->uncompressed_size_bytes);
    if (auto status = lz4_hdf5_decompress_into(framed, out); !status) {
        return tl::unexpected(status.error());
    }
    return out;
}

Result<std::vector<std::byte>> lz4_hdf5_compress(std::span<const std::byte> data,
                                                 std::size_t block_size_bytes) {
    if (block_size_bytes == 0 || block_size_bytes > kMaxFilterBlockBytes ||
        block_size_bytes > static_cast<std::size_t>(LZ4_MAX_INPUT_SIZE)) {
        return fail(ErrorCode::kInvalidArgument, "lz4-hdf5: invalid block size {} bytes",
                    block_size_bytes);
    }
    // One buffer for the whole frame, sized for the worst case, each block compressed straight
    // into it: per-block vectors and a growing output cost a zero fill, a copy and page faults
    // per block, as much CPU as LZ4 itself on incompressible detector frames.
    std::size_t capacity = kFilterHeaderSizeBytes;
    for (std::size_t offset = 0; offset < data.size(); offset += block_size_bytes) {
        const std::size_t length = std::min(block_size_bytes, data.size() - offset);
        capacity += 4 + static_cast<std::size_t>(LZ4_compressBound(static_cast<int>(length)));
    }
    std::vector<std::byte> out(capacity);
    detail::write_u64_be(data.size(), std::span(out).first<8>());
    detail::write_u32_be(static_cast<std::uint32_t>(block_size_bytes),
                         std::span(out).subspan<8, 4>());
    std::size_t at = kFilterHeaderSizeBytes;
    for (std::size_t offset = 0; offset < data.size(); offset += block_size_bytes) {
        const auto block = data.subspan(offset, std::min(block_size_bytes, data.size() - offset));
        const auto room = std::span(out).subspan(at + 4);
        const int written =
            LZ4_compress_default(as_chars(block), as_chars(room), static_cast<int>(block.size()),
                                 static_cast<int>(room.size()));
        if (written <= 0) {
            return fail(ErrorCode::kIo, "lz4: compressing {} bytes failed", block.size());
        }
        // The filter stores a block that does not shrink as it is (its size says which).
        std::size_t stored = static_cast<std::size_t>(written);
        if (stored >= block.size()) {
            std::memcpy(room.data(), block.data(), block.size());
            stored = block.size();
        }
        detail::write_u32_be(static_cast<std::uint32_t>(stored),
                             std::span(out).subspan(at).first<4>());
        at += 4 + stored;
    }
    out.resize(at);
    return out;
}

}  // namespace anisoflow::codec
