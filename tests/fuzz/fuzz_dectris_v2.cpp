// libFuzzer target: dectris::decode_v2(), one DECTRIS SIMPLON Stream v2 CBOR message, then the
// pixels of every channel of an accepted image (raw typed array, tag 56500 lz4 or bslz4).

#include <cstddef>
#include <cstdint>
#include <variant>

#include "anisoflow/dectris/decode.hpp"

#include "fuzz_support.hpp"

// libFuzzer's entry point, named by libFuzzer.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace anisoflow;  // NOLINT(google-build-using-namespace)
    auto message = dectris::decode_v2(fuzz::as_bytes(data, size));
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
