#pragma once
// LZ4 payloads of detector streams: plain LZ4 blocks of known size (DECTRIS Stream v1 "lz4<") and
// the HDF5 LZ4 filter framing (filter 32004, DECTRIS Stream v2 "lz4"). No I/O.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "anisoflow/core/result.hpp"

namespace anisoflow::codec {

/// LZ4 cannot expand one input byte into more than this many output bytes (a match length byte
/// of 255 adds 255 bytes); a header claiming more is corrupt. Checked before allocating.
inline constexpr std::uint64_t kLz4MaxExpansion = 255;

/// Block size the HDF5 LZ4 filter (32004) writes when none is given: 1 GiB.
inline constexpr std::size_t kLz4Hdf5DefaultBlockSizeBytes = std::size_t{1} << 30;

/// Decompresses one LZ4 block that must fill `out` exactly.
[[nodiscard]] Result<void> lz4_decompress_block_into(std::span<const std::byte> compressed,
                                                     std::span<std::byte> out);

/// Decompresses one LZ4 block whose decompressed size is known.
[[nodiscard]] Result<std::vector<std::byte>> lz4_decompress_block(
    std::span<const std::byte> compressed, std::size_t decompressed_size_bytes);

/// Compresses `data` into one LZ4 block (LZ4_compress_default).
[[nodiscard]] Result<std::vector<std::byte>> lz4_compress_block(std::span<const std::byte> data);

/// The 12-byte header shared by the HDF5 LZ4 (32004) and bitshuffle (32008) filter framings.
struct FilterHeader {
    std::uint64_t uncompressed_size_bytes = 0;  ///< big-endian uint64 at offset 0
    std::uint32_t block_size_bytes = 0;         ///< big-endian uint32 at offset 8
};
inline constexpr std::size_t kFilterHeaderSizeBytes = 12;

/// Reads the 12-byte filter header; an error if fewer than 12 bytes are given.
[[nodiscard]] Result<FilterHeader> read_filter_header(std::span<const std::byte> framed);

/// Decompresses HDF5-LZ4-framed data into `out`, whose size must equal the header's total.
[[nodiscard]] Result<void> lz4_hdf5_decompress_into(std::span<const std::byte> framed,
                                                    std::span<std::byte> out);

/// Decompresses HDF5-LZ4-framed data; the size comes from the header.
[[nodiscard]] Result<std::vector<std::byte>> lz4_hdf5_decompress(std::span<const std::byte> framed);

/// Compresses into the HDF5 LZ4 framing; a block that LZ4 would not shrink is stored as is, as
/// the filter does.
[[nodiscard]] Result<std::vector<std::byte>> lz4_hdf5_compress(
    std::span<const std::byte> data, std::size_t block_size_bytes = kLz4Hdf5DefaultBlockSizeBytes);

}  // namespace anisoflow::codec
