// Masks (SPEC 8): pyFAI's convention, non-zero = masked, from HDF5 or TIFF.

#include "anisoflow/io/mask.hpp"

#include <cmath>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>

#include <fmt/format.h>

#include "hdf5_util.hpp"
#include "sources.hpp"

namespace anisoflow::io {
namespace {

/// The first of kDefaultMaskDatasets the file holds.
Result<std::string> find_default_mask_dataset(const std::string& file) {
    auto handle = detail::open_hdf5_file(file);
    if (!handle) {
        return tl::unexpected(handle.error());
    }
    for (const auto candidate : kDefaultMaskDatasets) {
        if (detail::dataset_exists(handle->get(), std::string(candidate))) {
            return std::string(candidate);
        }
    }
    return fail(ErrorCode::kNotFound, "{}: no mask dataset found (tried {}, {}, {})", file,
                kDefaultMaskDatasets[0], kDefaultMaskDatasets[1], kDefaultMaskDatasets[2]);
}

Result<std::unique_ptr<FrameSource>> open_mask_source(std::string_view spec) {
    std::string file(spec);
    std::optional<std::string> dataset;
    if (const auto separator = spec.find("::"); separator != std::string_view::npos) {
        file = std::string(spec.substr(0, separator));
        dataset = std::string(spec.substr(separator + 2));
    }
    auto format = detail::format_of(file);
    if (!format) {
        return tl::unexpected(format.error());
    }
    switch (*format) {
        case detail::FileFormat::kHdf5: {
            if (!dataset) {
                auto found = find_default_mask_dataset(file);
                if (!found) {
                    return tl::unexpected(found.error());
                }
                dataset = std::move(*found);
            }
            return detail::open_hdf5_source(file, *dataset);
        }
        case detail::FileFormat::kTiff:
            if (dataset) {
                return fail(ErrorCode::kInvalidArgument,
                            "{}: a '::{}' dataset selection only applies to HDF5 files", file,
                            *dataset);
            }
            return detail::open_tiff_source(file);
        case detail::FileFormat::kGe:
            break;
    }
    return fail(ErrorCode::kUnsupported, "{}: masks are read from HDF5 or TIFF files, not GE raw",
                file);
}

}  // namespace

Result<std::vector<std::uint8_t>> read_mask(std::string_view spec, FrameShape expected) {
    auto source = open_mask_source(spec);
    if (!source) {
        return tl::unexpected(source.error());
    }
    const FrameSource& mask = **source;
    if (mask.frame_count() != 1) {
        return fail(ErrorCode::kInvalidArgument, "{}: a mask is one image, found {} frames",
                    mask.describe(), mask.frame_count());
    }
    if (mask.shape() != expected) {
        return fail(ErrorCode::kInvalidArgument, "{}: mask shape {} does not match the expected {}",
                    mask.describe(), format_shape(mask.shape()), format_shape(expected));
    }
    auto frame = (*source)->read_frame(0);
    if (!frame) {
        return tl::unexpected(frame.error());
    }
    std::vector<std::uint8_t> masked(expected.pixel_count());
    std::visit(
        [&masked](const auto& pixels) {
            for (std::size_t i = 0; i < pixels.size(); ++i) {
                using T = std::decay_t<decltype(pixels[i])>;
                if constexpr (std::is_floating_point_v<T>) {
                    masked[i] = (pixels[i] != T{0} || std::isnan(pixels[i])) ? 1 : 0;
                } else {
                    masked[i] = pixels[i] != T{0} ? 1 : 0;
                }
            }
        },
        frame->pixels);
    return masked;
}

}  // namespace anisoflow::io
