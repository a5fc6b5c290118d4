// libFuzzer target: the HDF5 frame and mask readers of lib/io, through the entry points the
// tools and services call (open_frame_source, read_mask) on a file holding the fuzz input.

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "anisoflow/io/frame_source.hpp"
#include "anisoflow/io/mask.hpp"

#include "fuzz_support.hpp"

// libFuzzer's entry point, named by libFuzzer.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace anisoflow;  // NOLINT(google-build-using-namespace)
    static fuzz::ScratchFile file("frames.h5");
    const std::string spec = file.write(fuzz::as_bytes(data, size)).string();
    FrameShape mask_shape{4, 4};
    if (auto source = io::open_frame_source(spec)) {
        mask_shape = (*source)->shape();
        const std::size_t frames = std::min<std::size_t>((*source)->frame_count(), 4);
        for (std::size_t i = 0; i < frames; ++i) {
            (void)(*source)->read_frame(i);
        }
        (void)(*source)->read_frame((*source)->frame_count());  // out of range: an error
    }
    (void)io::read_mask(spec, mask_shape);
    return 0;
}
