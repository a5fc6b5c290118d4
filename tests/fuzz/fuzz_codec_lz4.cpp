// libFuzzer target: the LZ4 decoders of lib/codec, a bare block of known size (Stream v1 "lz4<")
// and the HDF5 LZ4 framing (filter 32004, Stream v2 "lz4"). Input: byte 0 picks the decoder and
// the block's decoded size (byte 0 * 64 bytes), the rest is the payload.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "anisoflow/codec/lz4.hpp"

#include "fuzz_support.hpp"

// libFuzzer's entry point, named by libFuzzer.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace anisoflow;  // NOLINT(google-build-using-namespace)
    if (size == 0) {
        return 0;
    }
    const auto payload = fuzz::as_bytes(data + 1, size - 1);
    if ((data[0] & 1U) == 0) {
        const std::size_t decoded_size = std::size_t{data[0]} * 64;
        auto block = codec::lz4_decompress_block(payload, decoded_size);
        if (block && block->size() != decoded_size) {
            __builtin_trap();  // a block that fills `out` must fill it exactly
        }
        return 0;
    }
    auto framed = codec::lz4_hdf5_decompress(payload);
    if (framed) {
        // What decodes must encode again and decode to the same bytes.
        auto again = codec::lz4_hdf5_compress(*framed);
        auto decoded = again ? codec::lz4_hdf5_decompress(*again) : again;
        if (!decoded || *decoded != *framed) {
            __builtin_trap();
        }
    }
    return 0;
}
