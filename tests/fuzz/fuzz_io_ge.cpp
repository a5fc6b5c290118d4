// libFuzzer target: the GE raw reader of lib/io. A GE file is an 8192-byte header and 8 MiB
// frames, too big for a fuzz input, so byte 0 says how large the file is (0-2 whole frames,
// optionally a few bytes more or less) and the rest is written at its start; the remainder is
// a sparse hole of zeros.

#include <cstddef>
#include <cstdint>

#include "anisoflow/io/frame_source.hpp"

#include "fuzz_support.hpp"

// libFuzzer's entry point, named by libFuzzer.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace anisoflow;  // NOLINT(google-build-using-namespace)
    if (size == 0) {
        return 0;
    }
    static fuzz::ScratchFile file("frames.ge2");
    constexpr std::uintmax_t kFrameBytes =
        io::kGeFrameShape.rows * io::kGeFrameShape.cols * sizeof(std::uint16_t);
    const std::uintmax_t frames = data[0] % 3U;
    const auto delta = static_cast<std::intmax_t>((data[0] >> 2U) & 7U) - 4;  // -4 .. +3 bytes
    std::uintmax_t file_bytes = io::kGeHeaderBytes + frames * kFrameBytes;
    file_bytes = delta < 0 ? file_bytes - static_cast<std::uintmax_t>(-delta)
                           : file_bytes + static_cast<std::uintmax_t>(delta);
    if ((data[0] & 0x80U) != 0) {
        file_bytes = size - 1;  // exactly the input: header checks on short files
    }
    const auto& path = file.write(fuzz::as_bytes(data + 1, size - 1), file_bytes);
    if (auto source = io::open_frame_source(path.string())) {
        for (std::size_t i = 0; i <= (*source)->frame_count(); ++i) {
            (void)(*source)->read_frame(i);
        }
    }
    return 0;
}
