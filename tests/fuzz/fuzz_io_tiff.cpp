// libFuzzer target: the TIFF frame and mask readers of lib/io (libtiff underneath), through
// open_frame_source and read_mask on a file holding the fuzz input.

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "anisoflow/io/frame_source.hpp"
#include "anisoflow/io/mask.hpp"

#include "fuzz_support.hpp"

namespace {

/// A file may declare frames up to io::kMaxFrameBytes (1 GiB: a dataset never written reads as
/// its fill value), refused beyond that (unit tests); the harness reads frames up to 64 MiB so
/// that an input runs in milliseconds and within libFuzzer's 2 GB.
constexpr std::size_t kMaxReadBytes = std::size_t{64} << 20;

}  // namespace

// libFuzzer's entry point, named by libFuzzer.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace anisoflow;  // NOLINT(google-build-using-namespace)
    static fuzz::ScratchFile file("frames.tif");
    const std::string spec = file.write(fuzz::as_bytes(data, size)).string();
    FrameShape mask_shape{4, 4};
    if (auto source = io::open_frame_source(spec)) {
        mask_shape = (*source)->shape();
        if (mask_shape.pixel_count() * pixel_size_bytes((*source)->pixel_type()) > kMaxReadBytes) {
            return 0;
        }
        const std::size_t frames = std::min<std::size_t>((*source)->frame_count(), 4);
        for (std::size_t i = 0; i < frames; ++i) {
            (void)(*source)->read_frame(i);
        }
        if ((*source)->frame_count() > 1) {
            (void)(*source)->read_frame(0);  // back to page 0 after a later page
        }
    }
    (void)io::read_mask(spec, mask_shape);
    return 0;
}
