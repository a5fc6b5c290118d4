#include "anisoflow/codec/bitshuffle.hpp"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstring>
#include <limits>

#include <lz4.h>

#include "anisoflow/codec/lz4.hpp"

#include "byte_order.hpp"

namespace anisoflow::codec {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the bit transpose packs bytes into uint64 little-endian");

/// bitshuffle's BSHUF_TARGET_BLOCK_SIZE_B and BSHUF_MIN_RECOMMEND_BLOCK.
constexpr std::size_t kTargetBlockBytes = 8192;
constexpr std::size_t kMinDefaultBlock = 128;

/// Transposes the 8x8 bit matrix held in x (byte m = row m, bit k = column k): afterwards byte
/// k holds, at bit m, what bit k of byte m held. Three swap stages of 1x1, 2x2 and 4x4 blocks
/// (Hacker's Delight, 7-3); the transpose is its own inverse.
constexpr std::uint64_t transpose_8x8(std::uint64_t x) {
    std::uint64_t t = (x ^ (x >> 7U)) & 0x00AA00AA00AA00AAULL;
    x = x ^ t ^ (t << 7U);
    t = (x ^ (x >> 14U)) & 0x0000CCCC0000CCCCULL;
    x = x ^ t ^ (t << 14U);
    t = (x ^ (x >> 28U)) & 0x00000000F0F0F0F0ULL;
    x = x ^ t ^ (t << 28U);
    return x;
}
static_assert(transpose_8x8(0x0000000000000001ULL) == 0x0000000000000001ULL);
static_assert(transpose_8x8(0x0000000000000002ULL) == 0x0000000000000100ULL);
static_assert(transpose_8x8(0x8000000000000000ULL) == 0x8000000000000000ULL);

/// Bit-transposes one block of n elements (n a multiple of 8) of kElement bytes: row 8*j+k of
/// `out` (n/8 bytes) holds bit k of byte j of every element, element i at bit i%8 of byte i/8.
template <std::size_t kElement>
void transpose_block(const std::byte* in, std::byte* out, std::size_t n) {
    const std::size_t row_bytes = n / 8;
    for (std::size_t group = 0; group < row_bytes; ++group) {
        const std::byte* elements = in + group * 8 * kElement;
        for (std::size_t j = 0; j < kElement; ++j) {
            std::uint64_t x = 0;
            for (std::size_t m = 0; m < 8; ++m) {
                x |= std::to_integer<std::uint64_t>(elements[m * kElement + j]) << (8 * m);
            }
            x = transpose_8x8(x);
            for (std::size_t k = 0; k < 8; ++k) {
                out[(j * 8 + k) * row_bytes + group] = static_cast<std::byte>(x >> (8 * k));
            }
        }
    }
}

/// Inverse of transpose_block.
template <std::size_t kElement>
void untranspose_block(const std::byte* in, std::byte* out, std::size_t n) {
    const std::size_t row_bytes = n / 8;
    for (std::size_t group = 0; group < row_bytes; ++group) {
        std::byte* elements = out + group * 8 * kElement;
        for (std::size_t j = 0; j < kElement; ++j) {
            std::uint64_t x = 0;
            for (std::size_t k = 0; k < 8; ++k) {
                x |= std::to_integer<std::uint64_t>(in[(j * 8 + k) * row_bytes + group]) << (8 * k);
            }
            x = transpose_8x8(x);
            for (std::size_t m = 0; m < 8; ++m) {
                elements[m * kElement + j] = static_cast<std::byte>(x >> (8 * m));
            }
        }
    }
}

using BlockFunction = void (*)(const std::byte*, std::byte*, std::size_t);

/// The transpose for an element size; checked by validate_element_size() first.
BlockFunction transposer(std::size_t element_size_bytes, bool inverse) {
    switch (element_size_bytes) {
        case 1:
            return inverse ? &untranspose_block<1> : &transpose_block<1>;
        case 2:
            return inverse ? &untranspose_block<2> : &transpose_block<2>;
        case 4:
            return inverse ? &untranspose_block<4> : &transpose_block<4>;
        default:
            return inverse ? &untranspose_block<8> : &transpose_block<8>;
    }
}

Result<void> validate_element_size(std::size_t element_size_bytes) {
    if (element_size_bytes != 1 && element_size_bytes != 2 && element_size_bytes != 4 &&
        element_size_bytes != 8) {
        return fail(ErrorCode::kUnsupported,
                    "bitshuffle element size {} bytes (supported: 1, 2, 4, 8)", element_size_bytes);
    }
    return {};
}

/// Checks the element and block sizes and resolves block size 0 to the default.
Result<std::size_t> resolve_block_size(std::size_t element_size_bytes, std::size_t block_size) {
    if (auto status = validate_element_size(element_size_bytes); !status) {
        return tl::unexpected(status.error());
    }
    if (block_size == 0) {
        return bitshuffle_default_block_size(element_size_bytes);
    }
    if (block_size % kBitshuffleBlockMultiple != 0) {
        return fail(ErrorCode::kInvalidArgument,
                    "bitshuffle block size {} elements is not a multiple of {}", block_size,
                    kBitshuffleBlockMultiple);
    }
    return block_size;
}

/// How bitshuffle cuts n elements: full blocks, one last block that is a multiple of 8, and
/// fewer than 8 leftover elements copied as they are (bshuf_blocked_wrap_fun).
struct BlockLayout {
    std::size_t full_blocks;
    std::size_t last_block;  ///< elements, a multiple of 8, possibly 0
    std::size_t leftover;    ///< elements, < 8
};

BlockLayout block_layout(std::size_t n, std::size_t block_size) {
    const std::size_t rest = n % block_size;
    return {n / block_size, rest - rest % kBitshuffleBlockMultiple,
            rest % kBitshuffleBlockMultiple};
}

/// Runs the blocked (un)transpose of bitshuffle()/bitunshuffle().
Result<std::vector<std::byte>> blocked_transpose(std::span<const std::byte> in,
                                                 std::size_t element_size_bytes,
                                                 std::size_t block_size, bool inverse) {
    auto resolved = resolve_block_size(element_size_bytes, block_size);
    if (!resolved) {
        return tl::unexpected(resolved.error());
    }
    if (in.size() % element_size_bytes != 0) {
        return fail(ErrorCode::kInvalidArgument,
                    "bitshuffle: {} bytes are not a whole number of {}-byte elements", in.size(),
                    element_size_bytes);
    }
    const BlockFunction transpose = transposer(element_size_bytes, inverse);
    const std::size_t n = in.size() / element_size_bytes;
    const BlockLayout layout = block_layout(n, *resolved);
    std::vector<std::byte> out(in.size());
    std::size_t offset = 0;
    for (std::size_t block = 0; block < layout.full_blocks; ++block) {
        transpose(in.data() + offset, out.data() + offset, *resolved);
        offset += *resolved * element_size_bytes;
    }
    if (layout.last_block > 0) {
        transpose(in.data() + offset, out.data() + offset, layout.last_block);
        offset += layout.last_block * element_size_bytes;
    }
    std::copy(in.begin() + static_cast<std::ptrdiff_t>(offset), in.end(),
              out.begin() + static_cast<std::ptrdiff_t>(offset));
    return out;
}

/// Transposes and LZ4-compresses one block of n elements, appending [u32 BE size][LZ4 block].
void append_compressed_block(const std::byte* in, std::size_t n, std::size_t element_size_bytes,
                             BlockFunction transpose, std::vector<std::byte>& scratch,
                             std::vector<std::byte>& out) {
    const std::size_t bytes = n * element_size_bytes;
    scratch.resize(bytes);
    transpose(in, scratch.data(), n);
    const int bound = LZ4_compressBound(static_cast<int>(bytes));
    const std::size_t size_at = out.size();
    out.resize(size_at + 4 + static_cast<std::size_t>(bound));
    const int written = LZ4_compress_default(reinterpret_cast<const char*>(scratch.data()),
                                             reinterpret_cast<char*>(out.data() + size_at + 4),
                                             static_cast<int>(bytes), bound);
    // LZ4_compress_default cannot fail when given LZ4_compressBound bytes of room.
    assert(written > 0 && "lz4 compression into a compressBound buffer failed");
    detail::write_u32_be(static_cast<std::uint32_t>(written),
                         std::span(out).subspan(size_at).first<4>());
    out.resize(size_at + 4 + static_cast<std::size_t>(written));
}

/// Reads one [u32 BE size][LZ4 block] at `pos`, decompresses n elements and untransposes them.
Result<void> read_compressed_block(std::span<const std::byte> compressed, std::size_t& pos,
                                   std::size_t n, std::size_t element_size_bytes,
                                   BlockFunction untranspose, std::vector<std::byte>& scratch,
                                   std::byte* out, std::size_t block_index) {
    if (compressed.size() - pos < 4) {
        return fail(ErrorCode::kCorrupt, "bslz4: truncated before block {} at byte {}", block_index,
                    pos);
    }
    const std::size_t stored = detail::read_u32_be(compressed.subspan(pos).first<4>());
    pos += 4;
    if (stored > compressed.size() - pos) {
        return fail(ErrorCode::kCorrupt, "bslz4: block {} claims {} bytes but only {} are left",
                    block_index, stored, compressed.size() - pos);
    }
    scratch.resize(n * element_size_bytes);
    if (auto status = lz4_decompress_block_into(compressed.subspan(pos, stored), scratch);
        !status) {
        return tl::unexpected(
            status.error().with_context(fmt::format("bslz4 block {}", block_index)));
    }
    untranspose(scratch.data(), out, n);
    pos += stored;
    return {};
}

}  // namespace

std::size_t bitshuffle_default_block_size(std::size_t element_size_bytes) {
    assert(element_size_bytes > 0 && "element size must be positive");
    std::size_t block_size = kTargetBlockBytes / element_size_bytes;
    block_size = block_size / kBitshuffleBlockMultiple * kBitshuffleBlockMultiple;
    return std::max(block_size, kMinDefaultBlock);
}

Result<std::vector<std::byte>> bitshuffle(std::span<const std::byte> data,
                                          std::size_t element_size_bytes, std::size_t block_size) {
    return blocked_transpose(data, element_size_bytes, block_size, false);
}

Result<std::vector<std::byte>> bitunshuffle(std::span<const std::byte> shuffled,
                                            std::size_t element_size_bytes,
                                            std::size_t block_size) {
    return blocked_transpose(shuffled, element_size_bytes, block_size, true);
}

Result<std::vector<std::byte>> bslz4_compress_blocks(std::span<const std::byte> data,
                                                     std::size_t element_size_bytes,
                                                     std::size_t block_size) {
    auto resolved = resolve_block_size(element_size_bytes, block_size);
    if (!resolved) {
        return tl::unexpected(resolved.error());
    }
    if (data.size() % element_size_bytes != 0) {
        return fail(ErrorCode::kInvalidArgument,
                    "bslz4: {} bytes are not a whole number of {}-byte elements", data.size(),
                    element_size_bytes);
    }
    if (*resolved * element_size_bytes > static_cast<std::size_t>(LZ4_MAX_INPUT_SIZE)) {
        return fail(ErrorCode::kInvalidArgument, "bslz4: block of {} elements is too large",
                    *resolved);
    }
    const BlockFunction transpose = transposer(element_size_bytes, false);
    const BlockLayout layout = block_layout(data.size() / element_size_bytes, *resolved);
    std::vector<std::byte> out;
    std::vector<std::byte> scratch;
    std::size_t offset = 0;
    for (std::size_t block = 0; block < layout.full_blocks; ++block) {
        append_compressed_block(data.data() + offset, *resolved, element_size_bytes, transpose,
                                scratch, out);
        offset += *resolved * element_size_bytes;
    }
    if (layout.last_block > 0) {
        append_compressed_block(data.data() + offset, layout.last_block, element_size_bytes,
                                transpose, scratch, out);
        offset += layout.last_block * element_size_bytes;
    }
    out.insert(out.end(), data.begin() + static_cast<std::ptrdiff_t>(offset), data.end());
    return out;
}

Result<void> bslz4_decompress_blocks_into(std::span<const std::byte> compressed,
                                          std::size_t element_size_bytes, std::size_t block_size,
                                          std::span<std::byte> out) {
    auto resolved = resolve_block_size(element_size_bytes, block_size);
    if (!resolved) {
        return tl::unexpected(resolved.error());
    }
    if (out.size() % element_size_bytes != 0) {
        return fail(ErrorCode::kCorrupt,
                    "bslz4: {} bytes are not a whole number of {}-byte elements", out.size(),
                    element_size_bytes);
    }
    const BlockFunction untranspose = transposer(element_size_bytes, true);
    const BlockLayout layout = block_layout(out.size() / element_size_bytes, *resolved);
    std::vector<std::byte> scratch;
    std::size_t pos = 0;
    std::size_t offset = 0;
    for (std::size_t block = 0; block < layout.full_blocks; ++block) {
        if (auto status = read_compressed_block(compressed, pos, *resolved, element_size_bytes,
                                                untranspose, scratch, out.data() + offset, block);
            !status) {
            return status;
        }
        offset += *resolved * element_size_bytes;
    }
    if (layout.last_block > 0) {
        if (auto status = read_compressed_block(compressed, pos, layout.last_block,
                                                element_size_bytes, untranspose, scratch,
                                                out.data() + offset, layout.full_blocks);
            !status) {
            return status;
        }
        offset += layout.last_block * element_size_bytes;
    }
    const std::size_t leftover_bytes = layout.leftover * element_size_bytes;
    if (compressed.size() - pos != leftover_bytes) {
        return fail(ErrorCode::kCorrupt,
                    "bslz4: {} bytes follow the last block, expected {} uncompressed bytes",
                    compressed.size() - pos, leftover_bytes);
    }
    if (leftover_bytes > 0) {  // memcpy of nothing may still not take a null (empty) pointer
        std::memcpy(out.data() + offset, compressed.data() + pos, leftover_bytes);
    }
    return {};
}

Result<std::vector<std::byte>> bslz4_compress(std::span<const std::byte> data,
                                              std::size_t element_size_bytes,
                                              std::size_t block_size) {
    auto resolved = resolve_block_size(element_size_bytes, block_size);
    if (!resolved) {
        return tl::unexpected(resolved.error());
    }
    const std::size_t block_bytes = *resolved * element_size_bytes;
    if (block_bytes > std::numeric_limits<std::uint32_t>::max()) {
        return fail(ErrorCode::kInvalidArgument,
                    "bslz4: block of {} bytes does not fit the 32-bit header field", block_bytes);
    }
    auto blocks = bslz4_compress_blocks(data, element_size_bytes, *resolved);
    if (!blocks) {
        return tl::unexpected(blocks.error());
    }
    std::vector<std::byte> out(kFilterHeaderSizeBytes + blocks->size());
    detail::write_u64_be(data.size(), std::span(out).first<8>());
    detail::write_u32_be(static_cast<std::uint32_t>(block_bytes), std::span(out).subspan<8, 4>());
    std::copy(blocks->begin(), blocks->end(),
              out.begin() + static_cast<std::ptrdiff_t>(kFilterHeaderSizeBytes));
    return out;
}

Result<void> bslz4_decompress_into(std::span<const std::byte> framed,
                                   std::size_t element_size_bytes, std::span<std::byte> out) {
    if (auto status = validate_element_size(element_size_bytes); !status) {
        return status;
    }
    auto header = read_filter_header(framed);
    if (!header) {
        return tl::unexpected(header.error().with_context("bslz4"));
    }
    if (header->uncompressed_size_bytes != out.size()) {
        return fail(ErrorCode::kCorrupt, "bslz4: header says {} bytes, expected {}",
                    header->uncompressed_size_bytes, out.size());
    }
    const std::size_t block_bytes = header->block_size_bytes;
    if (block_bytes % (kBitshuffleBlockMultiple * element_size_bytes) != 0) {
        return fail(ErrorCode::kCorrupt,
                    "bslz4: header block size {} bytes is not a multiple of {} elements of {} "
                    "bytes",
                    block_bytes, kBitshuffleBlockMultiple, element_size_bytes);
    }
    // A block size of 0 selects the default, as in the bitshuffle filter.
    return bslz4_decompress_blocks_into(framed.subspan(kFilterHeaderSizeBytes), element_size_bytes,
                                        block_bytes / element_size_bytes, out);
}

Result<std::vector<std::byte>> bslz4_decompress(std::span<const std::byte> framed,
                                                std::size_t element_size_bytes) {
    auto header = read_filter_header(framed);
    if (!header) {
        return tl::unexpected(header.error().with_context("bslz4"));
    }
    if (header->uncompressed_size_bytes > kLz4MaxExpansion * framed.size()) {
        return fail(ErrorCode::kCorrupt,
                    "bslz4: header claims {} bytes from {} compressed bytes, more than LZ4 can "
                    "expand",
                    header->uncompressed_size_bytes, framed.size());
    }
    std::vector<std::byte> out(header->uncompressed_size_bytes);
    if (auto status = bslz4_decompress_into(framed, element_size_bytes, out); !status) {
        return tl::unexpected(status.error());
    }
    return out;
}

}  // namespace anisoflow::codec
