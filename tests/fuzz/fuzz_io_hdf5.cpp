// libFuzzer target: the HDF5 frame and mask readers of lib/io, through the entry points the
// tools and services call (open_frame_source, read_mask) on a file holding the fuzz input.

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include <hdf5.h>

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
    static fuzz::ScratchFile file("frames.h5");
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
        (void)(*source)->read_frame((*source)->frame_count());  // out of range: an error
    }
    (void)io::read_mask(spec, mask_shape);
    // Every identifier the readers opened is closed again, on every path: a leaked one keeps
    // its file's metadata in memory for the rest of the process (a service reading files for
    // a whole shift). Then HDF5's free lists go back to the system, so that libFuzzer's memory
    // limit catches leaks, not HDF5's caches, which grew past 2 GB over ~30,000 inputs in CI.
    if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0) {
        __builtin_trap();
    }
    H5garbage_collect();
    return 0;
}
