// libFuzzer target: bitshuffle-LZ4 decoding in lib/codec (HDF5 filter 32008, DECTRIS "bslz4"
// and "bs<bits>-lz4<"), framed and header-less, and bitunshuffle. Input: byte 0 picks the
// element size (1, 2, 4, 8) and the entry point, the rest is the payload.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "anisoflow/codec/bitshuffle.hpp"

#include "fuzz_support.hpp"

// libFuzzer's entry point, named by libFuzzer.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace anisoflow;  // NOLINT(google-build-using-namespace)
    if (size == 0) {
        return 0;
    }
    constexpr std::array<std::size_t, 4> kElementSizes = {1, 2, 4, 8};
    const std::size_t element = kElementSizes[data[0] & 3U];
    const unsigned mode = (data[0] >> 2U) & 3U;
    const auto payload = fuzz::as_bytes(data + 1, size - 1);
    switch (mode) {
        case 0: {
            auto decoded = codec::bslz4_decompress(payload, element);
            if (decoded) {
                // What decodes must round-trip through the encoder.
                auto again = codec::bslz4_compress(*decoded, element);
                auto twice = again ? codec::bslz4_decompress(*again, element) : again;
                if (!twice || *twice != *decoded) {
                    __builtin_trap();
                }
            }
            break;
        }
        case 1: {
            // Header-less blocks of a size chosen by the input (up to 255 elements x 64).
            const std::size_t count = payload.empty() ? 0 : std::size_t{data[1]} * 64 / element;
            const std::size_t block = (std::size_t{data[0]} >> 4U) * 8;
            std::vector<std::byte> out(count * element);
            (void)codec::bslz4_decompress_blocks_into(
                payload.empty() ? payload : payload.subspan(1), element, block, out);
            break;
        }
        default: {
            auto plain = codec::bitunshuffle(payload, element, (std::size_t{data[0]} >> 4U) * 8);
            if (plain) {
                auto shuffled =
                    codec::bitshuffle(*plain, element, (std::size_t{data[0]} >> 4U) * 8);
                if (!shuffled || shuffled->size() != payload.size() ||
                    !std::equal(shuffled->begin(), shuffled->end(), payload.begin())) {
                    __builtin_trap();  // the transpose is its own inverse
                }
            }
            break;
        }
    }
    return 0;
}
