// libFuzzer target: dectris::decode_v1(), DECTRIS SIMPLON Stream v1 multipart messages as
// ingest receives them, then the pixels of an accepted image (raw, lz4 or bitshuffle-lz4).
// Input: the parts joined by kPartSeparator (docs/fuzzing.md).

#include <cstddef>
#include <cstdint>
#include <variant>

#include "anisoflow/dectris/decode.hpp"

#include "fuzz_support.hpp"

// libFuzzer's entry point, named by libFuzzer.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace anisoflow;  // NOLINT(google-build-using-namespace)
    const auto parts = fuzz::split_parts(fuzz::as_bytes(data, size));
    auto message = dectris::decode_v1(parts);
    if (!message) {
        return 0;
    }
    if (const auto* image = std::get_if<dectris::Image>(&*message)) {
        for (std::size_t channel = 0; channel < image->channels.size(); ++channel) {
            (void)dectris::decode_pixels(*image, channel);
        }
    }
    return 0;
}
