#pragma once
// Bitshuffle and bitshuffle-LZ4 ("bslz4") in the exact format of the bitshuffle library, its
// HDF5 filter 32008 and DECTRIS detectors. No I/O.
//
// Data are cut into blocks of `block_size` elements (a multiple of 8; 0 picks the library
// default). Each block is bit-transposed: output row 8*j+k holds bit k of byte j of every element
// of the block, element i at bit i%8 of byte i/8. Elements beyond the last multiple of 8 are
// copied unchanged. bslz4 compresses each transposed block with LZ4 and writes it as
// [uint32 BE compressed size][LZ4 block]; the leftover bytes follow uncompressed. The framed
// form adds the 12-byte header (uint64 BE total bytes, uint32 BE block size in bytes).

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "anisoflow/core/result.hpp"

namespace anisoflow::codec {

/// Block element counts are multiples of this (bitshuffle's BSHUF_BLOCKED_MULT).
inline constexpr std::size_t kBitshuffleBlockMultiple = 8;

/// bitshuffle's default block size in elements: 8192 bytes / element size, rounded down to a
/// multiple of 8, at least 128 (bshuf_default_block_size; must never change).
[[nodiscard]] std::size_t bitshuffle_default_block_size(std::size_t element_size_bytes);

/// Blocked bit transpose of `data` (bshuf_bitshuffle). Element sizes 1, 2, 4 and 8.
[[nodiscard]] Result<std::vector<std::byte>> bitshuffle(std::span<const std::byte> data,
                                                        std::size_t element_size_bytes,
                                                        std::size_t block_size = 0);

/// Inverse of bitshuffle() (bshuf_bitunshuffle).
[[nodiscard]] Result<std::vector<std::byte>> bitunshuffle(std::span<const std::byte> shuffled,
                                                          std::size_t element_size_bytes,
                                                          std::size_t block_size = 0);

/// bslz4 blocks without the 12-byte header, as bitshuffle.compress_lz4() writes them.
[[nodiscard]] Result<std::vector<std::byte>> bslz4_compress_blocks(std::span<const std::byte> data,
                                                                   std::size_t element_size_bytes,
                                                                   std::size_t block_size = 0);

/// Decodes header-less bslz4 blocks into `out` (whose size is the uncompressed size).
[[nodiscard]] Result<void> bslz4_decompress_blocks_into(std::span<const std::byte> compressed,
                                                        std::size_t element_size_bytes,
                                                        std::size_t block_size,
                                                        std::span<std::byte> out);

/// bslz4 with the 12-byte header (HDF5 filter 32008, DECTRIS "bslz4" / "bs16-lz4<").
[[nodiscard]] Result<std::vector<std::byte>> bslz4_compress(std::span<const std::byte> data,
                                                            std::size_t element_size_bytes,
                                                            std::size_t block_size = 0);

/// Decodes framed bslz4 into `out`, whose size must equal the header's total. A header block
/// size of 0 means the default, as in the bitshuffle filter.
[[nodiscard]] Result<void> bslz4_decompress_into(std::span<const std::byte> framed,
                                                 std::size_t element_size_bytes,
                                                 std::span<std::byte> out);

/// Decodes framed bslz4; the size comes from the header.
[[nodiscard]] Result<std::vector<std::byte>> bslz4_decompress(std::span<const std::byte> framed,
                                                              std::size_t element_size_bytes);

}  // namespace anisoflow::codec
