#include "anisoflow/codec/lz4.hpp"

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace anisoflow::codec {
namespace {

using ::testing::HasSubstr;

/// n bytes of sparse low counts (mostly zero), compressible like a weak diffraction frame.
std::vector<std::byte> compressible_bytes(std::size_t n, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::poisson_distribution<int> counts(0.2);
    std::vector<std::byte> bytes(n);
    for (auto& b : bytes) {
        b = static_cast<std::byte>(counts(rng));
    }
    return bytes;
}

std::vector<std::byte> random_bytes(std::size_t n, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> byte(0, 255);
    std::vector<std::byte> bytes(n);
    for (auto& b : bytes) {
        b = static_cast<std::byte>(byte(rng));
    }
    return bytes;
}

void append_u32_be(std::vector<std::byte>& out, std::uint32_t value) {
    for (int shift = 24; shift >= 0; shift -= 8) {
        out.push_back(static_cast<std::byte>((value >> shift) & 0xFFU));
    }
}

void append_u64_be(std::vector<std::byte>& out, std::uint64_t value) {
    for (int shift = 56; shift >= 0; shift -= 8) {
        out.push_back(static_cast<std::byte>((value >> shift) & 0xFFU));
    }
}

TEST(Lz4Block, RoundTripsCompressibleIncompressibleAndEmptyData) {
    for (const auto& data : {compressible_bytes(10000, 1), random_bytes(3000, 2),
                             std::vector<std::byte>{}, std::vector<std::byte>{std::byte{7}}}) {
        auto compressed = lz4_compress_block(data);
        ASSERT_TRUE(compressed) << compressed.error().message;
        auto back = lz4_decompress_block(*compressed, data.size());
        ASSERT_TRUE(back) << back.error().message;
        EXPECT_EQ(*back, data);
    }
}

TEST(Lz4Block, CompressesDetectorLikeData) {
    const auto data = compressible_bytes(10000, 3);
    auto compressed = lz4_compress_block(data);
    ASSERT_TRUE(compressed);
    EXPECT_LT(compressed->size(), data.size() / 2);
}

TEST(Lz4Block, RejectsAWrongDecompressedSize) {
    const auto data = compressible_bytes(4000, 4);
    auto compressed = lz4_compress_block(data);
    ASSERT_TRUE(compressed);
    for (const std::size_t wrong : {std::size_t{0}, std::size_t{3999}, std::size_t{4001}}) {
        auto back = lz4_decompress_block(*compressed, wrong);
        ASSERT_FALSE(back) << "size " << wrong;
        EXPECT_EQ(back.error().code, ErrorCode::kCorrupt);
    }
}

TEST(Lz4Block, RejectsEveryTruncation) {
    const auto data = compressible_bytes(2000, 5);
    auto compressed = lz4_compress_block(data);
    ASSERT_TRUE(compressed);
    for (std::size_t size = 0; size < compressed->size(); ++size) {
        auto back = lz4_decompress_block(std::span(*compressed).first(size), data.size());
        EXPECT_FALSE(back) << "prefix of " << size << " bytes";
    }
}

TEST(Lz4Block, RejectsGarbage) {
    // A token announcing 15+ literals followed by length bytes that run past the input.
    const std::vector<std::byte> garbage(64, std::byte{0xFF});
    auto back = lz4_decompress_block(garbage, 100);
    ASSERT_FALSE(back);
    EXPECT_THAT(back.error().message, HasSubstr("corrupt"));
}

TEST(Lz4Block, RefusesSizesLz4CannotReachBeforeAllocating) {
    const std::vector<std::byte> tiny(4, std::byte{0});
    auto back = lz4_decompress_block(tiny, std::size_t{1} << 40);
    ASSERT_FALSE(back);
    EXPECT_THAT(back.error().message, HasSubstr("cannot decode"));
}

TEST(Lz4Hdf5, WritesTheFilterHeaderAndStoresIncompressibleBlocksRaw) {
    // Block 0 compressible, block 1 random (stored as is), block 2 a short compressible tail.
    auto data = compressible_bytes(1024, 6);
    const auto noise = random_bytes(1024, 7);
    data.insert(data.end(), noise.begin(), noise.end());
    const auto tail = compressible_bytes(100, 8);
    data.insert(data.end(), tail.begin(), tail.end());

    auto framed = lz4_hdf5_compress(data, 1024);
    ASSERT_TRUE(framed) << framed.error().message;
    auto header = read_filter_header(*framed);
    ASSERT_TRUE(header);
    EXPECT_EQ(header->uncompressed_size_bytes, data.size());
    EXPECT_EQ(header->block_size_bytes, 1024U);

    // Walk the blocks by the documented layout: [u32 BE size][data], raw when size == block.
    std::size_t pos = kFilterHeaderSizeBytes;
    std::vector<std::size_t> stored_sizes;
    while (pos < framed->size()) {
        std::uint32_t size = 0;
        for (std::size_t i = 0; i < 4; ++i) {
            size = (size << 8U) | std::to_integer<std::uint32_t>((*framed)[pos + i]);
        }
        stored_sizes.push_back(size);
        pos += 4 + size;
    }
    EXPECT_EQ(pos, framed->size());
    ASSERT_EQ(stored_sizes.size(), 3U);
    EXPECT_LT(stored_sizes[0], 1024U);
    EXPECT_EQ(stored_sizes[1], 1024U);  // the random block, stored raw

    auto back = lz4_hdf5_decompress(*framed);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(*back, data);
}

TEST(Lz4Hdf5, DecodesAHandBuiltFrame) {
    // Built from the format description, not by lz4_hdf5_compress: one raw block, one LZ4 block.
    const auto raw_block = random_bytes(16, 9);
    const auto lz4_part = compressible_bytes(10, 10);
    auto lz4_block = lz4_compress_block(lz4_part);
    ASSERT_TRUE(lz4_block);
    std::vector<std::byte> framed;
    append_u64_be(framed, 26);
    append_u32_be(framed, 16);
    append_u32_be(framed, 16);
    framed.insert(framed.end(), raw_block.begin(), raw_block.end());
    append_u32_be(framed, static_cast<std::uint32_t>(lz4_block->size()));
    framed.insert(framed.end(), lz4_block->begin(), lz4_block->end());

    auto back = lz4_hdf5_decompress(framed);
    ASSERT_TRUE(back) << back.error().message;
    auto expected = raw_block;
    expected.insert(expected.end(), lz4_part.begin(), lz4_part.end());
    EXPECT_EQ(*back, expected);
}

TEST(Lz4Hdf5, EmptyInputHasAHeaderAndNoBlocks) {
    auto framed = lz4_hdf5_compress({}, 4096);
    ASSERT_TRUE(framed);
    EXPECT_EQ(framed->size(), kFilterHeaderSizeBytes);
    auto back = lz4_hdf5_decompress(*framed);
    ASSERT_TRUE(back);
    EXPECT_TRUE(back->empty());
}

TEST(Lz4Hdf5, RejectsEveryTruncationAndTrailingBytes) {
    const auto data = compressible_bytes(3000, 11);
    auto framed = lz4_hdf5_compress(data, 1000);
    ASSERT_TRUE(framed);
    for (std::size_t size = 0; size < framed->size(); ++size) {
        EXPECT_FALSE(lz4_hdf5_decompress(std::span(*framed).first(size))) << size << " bytes";
    }
    auto padded = *framed;
    padded.push_back(std::byte{0});
    auto back = lz4_hdf5_decompress(padded);
    ASSERT_FALSE(back);
    EXPECT_THAT(back.error().message, HasSubstr("trailing"));
}

TEST(Lz4Hdf5, RejectsHeadersThatDisagreeWithTheCaller) {
    const auto data = compressible_bytes(500, 12);
    auto framed = lz4_hdf5_compress(data, 256);
    ASSERT_TRUE(framed);
    std::vector<std::byte> out(499);
    auto status = lz4_hdf5_decompress_into(*framed, out);
    ASSERT_FALSE(status);
    EXPECT_THAT(status.error().message, HasSubstr("header says 500 bytes, expected 499"));

    auto zero_block = *framed;
    for (std::size_t i = 8; i < 12; ++i) {
        zero_block[i] = std::byte{0};
    }
    auto back = lz4_hdf5_decompress(zero_block);
    ASSERT_FALSE(back);
    EXPECT_THAT(back.error().message, HasSubstr("invalid block size"));
}

TEST(Lz4Hdf5, RejectsAHugeClaimedSizeWithoutAllocating) {
    std::vector<std::byte> framed;
    append_u64_be(framed, std::uint64_t{1} << 62);
    append_u32_be(framed, 1024);
    append_u32_be(framed, 4);
    framed.resize(framed.size() + 4, std::byte{0});
    auto back = lz4_hdf5_decompress(framed);
    ASSERT_FALSE(back);
    EXPECT_EQ(back.error().code, ErrorCode::kCorrupt);
}

TEST(Lz4Hdf5, RejectsAnInvalidBlockSizeWhenCompressing) {
    const auto data = compressible_bytes(10, 13);
    auto framed = lz4_hdf5_compress(data, 0);
    ASSERT_FALSE(framed);
    EXPECT_EQ(framed.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace anisoflow::codec
