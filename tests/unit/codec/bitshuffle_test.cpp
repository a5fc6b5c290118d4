#include "anisoflow/codec/bitshuffle.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "anisoflow/codec/lz4.hpp"

namespace anisoflow::codec {
namespace {

using ::testing::HasSubstr;

/// One reference case written by make_bitshuffle_fixtures.py with Debian's bitshuffle module.
struct FixtureCase {
    std::string name;
    std::size_t element_size_bytes;
    std::size_t element_count;
    std::size_t block_size;  ///< elements; 0 = the library default
};

/// The same list as CASES in make_bitshuffle_fixtures.py.
const std::vector<FixtureCase>& fixture_cases() {
    static const std::vector<FixtureCase> cases = {
        {"u16_n4096_default", 2, 4096, 0}, {"u16_n1003_default", 2, 1003, 0},
        {"u16_n2500_b512", 2, 2500, 512},  {"u32_n1000_default", 4, 1000, 0},
        {"u32_n2053_default", 4, 2053, 0}, {"u32_n777_b64", 4, 777, 64},
        {"u8_n520_default", 1, 520, 0},    {"u64_n203_b64", 8, 203, 64},
    };
    return cases;
}

std::vector<std::byte> read_fixture(const std::string& file_name) {
    const std::filesystem::path path =
        std::filesystem::path(ANISOFLOW_BITSHUFFLE_FIXTURE_DIR) / file_name;
    std::ifstream in(path, std::ios::binary);
    EXPECT_TRUE(in) << "missing fixture " << path;
    std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> bytes(chars.size());
    std::memcpy(bytes.data(), chars.data(), chars.size());
    return bytes;
}

/// The 12-byte header of HDF5 filter 32008: uint64 BE total bytes, uint32 BE block bytes.
std::vector<std::byte> filter_header(std::uint64_t total_bytes, std::uint32_t block_bytes) {
    std::vector<std::byte> header;
    for (int shift = 56; shift >= 0; shift -= 8) {
        header.push_back(static_cast<std::byte>((total_bytes >> shift) & 0xFFU));
    }
    for (int shift = 24; shift >= 0; shift -= 8) {
        header.push_back(static_cast<std::byte>((block_bytes >> shift) & 0xFFU));
    }
    return header;
}

std::vector<std::byte> detector_like_bytes(std::size_t n_elements, std::size_t element_size,
                                           std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::poisson_distribution<std::uint64_t> counts(30.0);
    std::vector<std::byte> bytes(n_elements * element_size);
    for (std::size_t i = 0; i < n_elements; ++i) {
        const std::uint64_t value = counts(rng);
        std::memcpy(bytes.data() + i * element_size, &value, element_size);  // little-endian
    }
    return bytes;
}

TEST(Bitshuffle, DefaultBlockSizeFollowsTheLibraryRule) {
    // 8192 bytes / element size, rounded down to a multiple of 8, at least 128 elements.
    EXPECT_EQ(bitshuffle_default_block_size(1), 8192U);
    EXPECT_EQ(bitshuffle_default_block_size(2), 4096U);
    EXPECT_EQ(bitshuffle_default_block_size(4), 2048U);
    EXPECT_EQ(bitshuffle_default_block_size(8), 1024U);
    EXPECT_EQ(bitshuffle_default_block_size(3), 2728U);  // 2730 rounded down
    EXPECT_EQ(bitshuffle_default_block_size(128), 128U);
}

TEST(Bitshuffle, TransposesBitsIntoRowsByByteThenBit) {
    // Eight uint16 elements, element i = 1 << i: bit i of byte 0 is set in element i only, so
    // row k (bit k of byte 0) is a single byte with bit k set; rows 8..15 (byte 1) are zero.
    std::vector<std::byte> data(16);
    for (std::size_t i = 0; i < 8; ++i) {
        data[2 * i] = static_cast<std::byte>(1U << i);
    }
    auto shuffled = bitshuffle(data, 2);
    ASSERT_TRUE(shuffled);
    for (std::size_t k = 0; k < 8; ++k) {
        EXPECT_EQ((*shuffled)[k], static_cast<std::byte>(1U << k)) << "row " << k;
        EXPECT_EQ((*shuffled)[8 + k], std::byte{0}) << "row " << 8 + k;
    }
}

TEST(Bitshuffle, MatchesTheDebianBitshuffleModule) {
    for (const auto& c : fixture_cases()) {
        SCOPED_TRACE(c.name);
        const auto raw = read_fixture(c.name + ".raw");
        const auto expected = read_fixture(c.name + ".bitshuffle");
        ASSERT_EQ(raw.size(), c.element_count * c.element_size_bytes);
        auto shuffled = bitshuffle(raw, c.element_size_bytes, c.block_size);
        ASSERT_TRUE(shuffled) << shuffled.error().message;
        EXPECT_EQ(*shuffled, expected);
        auto back = bitunshuffle(expected, c.element_size_bytes, c.block_size);
        ASSERT_TRUE(back) << back.error().message;
        EXPECT_EQ(*back, raw);
    }
}

TEST(Bslz4, DecodesTheDebianBitshuffleModuleOutput) {
    for (const auto& c : fixture_cases()) {
        SCOPED_TRACE(c.name);
        const auto raw = read_fixture(c.name + ".raw");
        const auto blocks = read_fixture(c.name + ".bslz4");
        std::vector<std::byte> out(raw.size());
        auto status = bslz4_decompress_blocks_into(blocks, c.element_size_bytes, c.block_size, out);
        ASSERT_TRUE(status) << status.error().message;
        EXPECT_EQ(out, raw);

        // The same blocks behind the HDF5-filter header, as DECTRIS detectors send them.
        const std::size_t block =
            c.block_size == 0 ? bitshuffle_default_block_size(c.element_size_bytes) : c.block_size;
        auto framed =
            filter_header(raw.size(), static_cast<std::uint32_t>(block * c.element_size_bytes));
        framed.insert(framed.end(), blocks.begin(), blocks.end());
        auto decoded = bslz4_decompress(framed, c.element_size_bytes);
        ASSERT_TRUE(decoded) << decoded.error().message;
        EXPECT_EQ(*decoded, raw);
    }
}

TEST(Bslz4, EncodesTheSameBytesAsTheDebianBitshuffleModule) {
    // Byte-exact because both sides call LZ4_compress_default of the same liblz4 (1.9.4); a
    // different liblz4 may choose other matches, which still decode (test above).
    for (const auto& c : fixture_cases()) {
        SCOPED_TRACE(c.name);
        const auto raw = read_fixture(c.name + ".raw");
        const auto blocks = read_fixture(c.name + ".bslz4");
        auto compressed = bslz4_compress_blocks(raw, c.element_size_bytes, c.block_size);
        ASSERT_TRUE(compressed) << compressed.error().message;
        EXPECT_EQ(*compressed, blocks);

        auto framed = bslz4_compress(raw, c.element_size_bytes, c.block_size);
        ASSERT_TRUE(framed);
        const std::size_t block =
            c.block_size == 0 ? bitshuffle_default_block_size(c.element_size_bytes) : c.block_size;
        auto expected =
            filter_header(raw.size(), static_cast<std::uint32_t>(block * c.element_size_bytes));
        expected.insert(expected.end(), blocks.begin(), blocks.end());
        EXPECT_EQ(*framed, expected);
    }
}

TEST(Bslz4, RoundTripsEveryElementSizeAndAwkwardLength) {
    for (const std::size_t element_size : {1U, 2U, 4U, 8U}) {
        for (const std::size_t n : {0U, 1U, 7U, 8U, 9U, 127U, 1000U, 5003U}) {
            for (const std::size_t block_size : {0U, 8U, 64U}) {
                SCOPED_TRACE(testing::Message() << "element " << element_size << " n " << n
                                                << " block " << block_size);
                const auto data = detector_like_bytes(n, element_size, static_cast<unsigned>(n));
                auto framed = bslz4_compress(data, element_size, block_size);
                ASSERT_TRUE(framed) << framed.error().message;
                auto back = bslz4_decompress(*framed, element_size);
                ASSERT_TRUE(back) << back.error().message;
                EXPECT_EQ(*back, data);
                auto shuffled = bitshuffle(data, element_size, block_size);
                ASSERT_TRUE(shuffled);
                auto unshuffled = bitunshuffle(*shuffled, element_size, block_size);
                ASSERT_TRUE(unshuffled);
                EXPECT_EQ(*unshuffled, data);
            }
        }
    }
}

TEST(Bslz4, AcceptsAHeaderBlockSizeOfZeroAsTheDefault) {
    const auto raw = read_fixture("u16_n1003_default.raw");
    const auto blocks = read_fixture("u16_n1003_default.bslz4");
    auto framed = filter_header(raw.size(), 0);
    framed.insert(framed.end(), blocks.begin(), blocks.end());
    auto decoded = bslz4_decompress(framed, 2);
    ASSERT_TRUE(decoded) << decoded.error().message;
    EXPECT_EQ(*decoded, raw);
}

TEST(Bslz4, RejectsEveryTruncation) {
    const auto data = detector_like_bytes(1003, 2, 21);  // 3 leftover elements
    auto framed = bslz4_compress(data, 2, 256);
    ASSERT_TRUE(framed);
    for (std::size_t size = 0; size < framed->size(); ++size) {
        EXPECT_FALSE(bslz4_decompress(std::span(*framed).first(size), 2)) << size << " bytes";
    }
}

TEST(Bslz4, RejectsTrailingBytes) {
    const auto data = detector_like_bytes(1000, 4, 22);
    auto framed = bslz4_compress(data, 4);
    ASSERT_TRUE(framed);
    framed->push_back(std::byte{0});
    auto back = bslz4_decompress(*framed, 4);
    ASSERT_FALSE(back);
    EXPECT_THAT(back.error().message, HasSubstr("follow the last block"));
}

TEST(Bslz4, RejectsASizeThatDisagreesWithTheCaller) {
    const auto data = detector_like_bytes(100, 4, 23);
    auto framed = bslz4_compress(data, 4);
    ASSERT_TRUE(framed);
    std::vector<std::byte> out(404);
    auto status = bslz4_decompress_into(*framed, 4, out);
    ASSERT_FALSE(status);
    EXPECT_THAT(status.error().message, HasSubstr("header says 400 bytes, expected 404"));
}

TEST(Bslz4, RejectsABlockSizeThatIsNotAMultipleOfEightElements) {
    const auto data = detector_like_bytes(100, 4, 24);
    auto framed = bslz4_compress(data, 4);
    ASSERT_TRUE(framed);
    auto bad = *framed;
    bad[11] = std::byte{12};  // block size 12 bytes = 3 elements of 4 bytes
    bad[10] = bad[9] = bad[8] = std::byte{0};
    auto back = bslz4_decompress(bad, 4);
    ASSERT_FALSE(back);
    EXPECT_THAT(back.error().message, HasSubstr("not a multiple of 8 elements"));
}

TEST(Bslz4, RejectsGarbageBlocks) {
    // A valid header followed by a block whose LZ4 data are noise.
    auto framed = filter_header(512, 512);
    const std::vector<std::byte> noise(40, std::byte{0xF7});
    framed.push_back(std::byte{0});
    framed.push_back(std::byte{0});
    framed.push_back(std::byte{0});
    framed.push_back(std::byte{40});
    framed.insert(framed.end(), noise.begin(), noise.end());
    auto back = bslz4_decompress(framed, 4);
    ASSERT_FALSE(back);
    EXPECT_EQ(back.error().code, ErrorCode::kCorrupt);
    EXPECT_THAT(back.error().message, HasSubstr("bslz4 block 0"));
}

TEST(Bslz4, RejectsABlockSizeFieldLargerThanTheInput) {
    auto framed = filter_header(64, 64);
    framed.insert(framed.end(),
                  {std::byte{0x7F}, std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF}});
    framed.resize(framed.size() + 20, std::byte{0});
    auto back = bslz4_decompress(framed, 4);
    ASSERT_FALSE(back);
    EXPECT_THAT(back.error().message, HasSubstr("claims"));
}

TEST(Bslz4, RejectsAHugeClaimedSizeWithoutAllocating) {
    auto framed = filter_header(std::uint64_t{1} << 60, 8192);
    framed.resize(framed.size() + 16, std::byte{0});
    auto back = bslz4_decompress(framed, 2);
    ASSERT_FALSE(back);
    EXPECT_THAT(back.error().message, HasSubstr("more than LZ4 can expand"));
}

TEST(Bslz4, RejectsUnsupportedElementSizesAndBlockSizes) {
    const auto data = detector_like_bytes(64, 3, 25);
    auto three = bslz4_compress(data, 3);
    ASSERT_FALSE(three);
    EXPECT_EQ(three.error().code, ErrorCode::kUnsupported);
    auto odd_block = bitshuffle(detector_like_bytes(64, 2, 26), 2, 12);
    ASSERT_FALSE(odd_block);
    EXPECT_EQ(odd_block.error().code, ErrorCode::kInvalidArgument);
    auto partial_element = bitshuffle(std::vector<std::byte>(7), 2);
    ASSERT_FALSE(partial_element);
    EXPECT_THAT(partial_element.error().message, HasSubstr("whole number"));
}

}  // namespace
}  // namespace anisoflow::codec
