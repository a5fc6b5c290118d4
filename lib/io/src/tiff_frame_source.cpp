// TIFF frames through libtiff: one frame per directory (page); single-channel 8/16/32-bit
// integers and 32/64-bit floats, stored in strips or tiles, any codec libtiff was built with.

#include <algorithm>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <tiffio.h>

#include "sources.hpp"

namespace anisoflow::io::detail {
namespace {

/// libtiff's messages for one open file, captured instead of printed.
struct TiffMessages {
    std::string error;
    std::string warning;
};

int capture_message(std::string& target, const char* module, const char* format, va_list args) {
    char text[512];
    std::vsnprintf(text, sizeof text, format, args);
    target = (module != nullptr && *module != '\0') ? fmt::format("{}: {}", module, text)
                                                    : std::string(text);
    return 1;  // handled: libtiff does not call the process-wide handler
}

int capture_error(TIFF* /*tif*/, void* user_data, const char* module, const char* format,
                  va_list args) {
    return capture_message(static_cast<TiffMessages*>(user_data)->error, module, format, args);
}

int capture_warning(TIFF* /*tif*/, void* user_data, const char* module, const char* format,
                    va_list args) {
    return capture_message(static_cast<TiffMessages*>(user_data)->warning, module, format, args);
}

/// Process-wide handlers stay silent too, for messages libtiff emits outside an open file.
void silence_libtiff() {
    static std::once_flag once;
    std::call_once(once, [] {
        TIFFSetErrorHandler(nullptr);
        TIFFSetWarningHandler(nullptr);
    });
}

struct TiffCloser {
    void operator()(TIFF* tif) const { TIFFClose(tif); }
};
using TiffPtr = std::unique_ptr<TIFF, TiffCloser>;

struct PageLayout {
    FrameShape shape;
    PixelType type;
    friend bool operator==(const PageLayout&, const PageLayout&) = default;
};

/// Shape and pixel type of the current directory; the error says what is unsupported.
Result<PageLayout> read_layout(TIFF* tif) {
    std::uint32_t width = 0;
    std::uint32_t height = 0;
    std::uint16_t samples = 1;
    std::uint16_t bits = 1;
    std::uint16_t format = SAMPLEFORMAT_UINT;
    std::uint16_t photometric = PHOTOMETRIC_MINISBLACK;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &width);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &height);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &samples);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bits);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &format);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PHOTOMETRIC, &photometric);
    if (samples != 1) {
        return fail(ErrorCode::kUnsupported,
                    "{} samples per pixel (RGB or multi-channel); only single-channel images "
                    "are frames",
                    samples);
    }
    if (photometric == PHOTOMETRIC_PALETTE) {
        return fail(ErrorCode::kUnsupported, "palette (colour-mapped) images are not frames");
    }
    if (width == 0 || height == 0) {
        return fail(ErrorCode::kCorrupt, "empty image ({}x{})", height, width);
    }
    const FrameShape shape{height, width};
    if (format == SAMPLEFORMAT_IEEEFP) {
        if (bits == 32) {
            return PageLayout{shape, PixelType::kFloat32};
        }
        if (bits == 64) {
            return PageLayout{shape, PixelType::kFloat64};
        }
    } else if (format == SAMPLEFORMAT_UINT || format == SAMPLEFORMAT_INT) {
        const bool is_signed = format == SAMPLEFORMAT_INT;
        switch (bits) {
            case 8:
                return PageLayout{shape, is_signed ? PixelType::kInt8 : PixelType::kUint8};
            case 16:
                return PageLayout{shape, is_signed ? PixelType::kInt16 : PixelType::kUint16};
            case 32:
                return PageLayout{shape, is_signed ? PixelType::kInt32 : PixelType::kUint32};
            default:
                break;
        }
    }
    const char* format_name = format == SAMPLEFORMAT_IEEEFP ? "float"
                              : format == SAMPLEFORMAT_INT  ? "signed integer"
                              : format == SAMPLEFORMAT_UINT ? "unsigned integer"
                                                            : "untyped";
    return fail(ErrorCode::kUnsupported,
                "unsupported pixel format: {}-bit {} (frames are 8/16/32-bit integers or "
                "32/64-bit floats)",
                bits, format_name);
}

class TiffFrameSource final : public FrameSource {
  public:
    TiffFrameSource(std::string label, std::unique_ptr<TiffMessages> messages, TiffPtr tif,
                    PageLayout layout, std::size_t frame_count)
        : label_(std::move(label)),
          messages_(std::move(messages)),
          tif_(std::move(tif)),
          layout_(layout),
          frame_count_(frame_count) {}

    FrameShape shape() const override { return layout_.shape; }
    PixelType pixel_type() const override { return layout_.type; }
    std::size_t frame_count() const override { return frame_count_; }
    std::string describe() const override { return label_; }

    Result<Frame> read_frame_at(std::size_t index) override {
        messages_->error.clear();
        if (!go_to_page(index)) {
            return fail(ErrorCode::kCorrupt, "{}: cannot read page {}: {}", label_, index,
                        messages_->error);
        }
        auto layout = read_layout(tif_.get());
        if (!layout) {
            return tl::unexpected(
                layout.error().with_context(fmt::format("{} page {}", label_, index)));
        }
        if (*layout != layout_) {
            return fail(ErrorCode::kCorrupt, "{}: page {} changed since the file was opened",
                        label_, index);
        }

        Frame frame;
        frame.shape = layout_.shape;
        frame.index_in_source = index;
        frame.pixels = allocate_pixels(layout_.type, layout_.shape.pixel_count());
        auto* pixels = static_cast<unsigned char*>(pixel_data(frame.pixels));
        const bool ok = TIFFIsTiled(tif_.get()) != 0 ? read_tiles(pixels) : read_strips(pixels);
        if (!ok) {
            return fail(ErrorCode::kCorrupt, "{}: cannot read page {} (truncated or corrupt?): {}",
                        label_, index, messages_->error.empty() ? "short read" : messages_->error);
        }
        return frame;
    }

  private:
    bool go_to_page(std::size_t index) {
        const auto current = static_cast<std::size_t>(TIFFCurrentDirectory(tif_.get()));
        if (current == index) {
            return true;
        }
        if (current + 1 == index) {  // sequential reading: no walk from the first page
            return TIFFReadDirectory(tif_.get()) == 1;
        }
        return TIFFSetDirectory(tif_.get(), static_cast<tdir_t>(index)) == 1;
    }

    [[nodiscard]] std::size_t row_bytes() const {
        return layout_.shape.cols * pixel_size_bytes(layout_.type);
    }

    bool read_strips(unsigned char* pixels) {
        TIFF* tif = tif_.get();
        const std::size_t total = layout_.shape.rows * row_bytes();
        const auto strip_bytes = static_cast<std::size_t>(TIFFStripSize(tif));
        std::size_t offset = 0;
        for (tstrip_t strip = 0; strip < TIFFNumberOfStrips(tif) && offset < total; ++strip) {
            const std::size_t wanted = std::min(strip_bytes, total - offset);
            const tmsize_t got =
                TIFFReadEncodedStrip(tif, strip, pixels + offset, static_cast<tmsize_t>(wanted));
            if (got < 0 || static_cast<std::size_t>(got) != wanted) {
                return false;
            }
            offset += wanted;
        }
        return offset == total;
    }

    bool read_tiles(unsigned char* pixels) {
        TIFF* tif = tif_.get();
        std::uint32_t tile_width = 0;
        std::uint32_t tile_height = 0;
        TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tile_width);
        TIFFGetField(tif, TIFFTAG_TILELENGTH, &tile_height);
        if (tile_width == 0 || tile_height == 0) {
            messages_->error = "tile size is zero";
            return false;
        }
        const std::size_t pixel_bytes = pixel_size_bytes(layout_.type);
        std::vector<unsigned char> tile(static_cast<std::size_t>(TIFFTileSize(tif)));
        const std::size_t tile_row_bytes = tile_width * pixel_bytes;
        if (tile.size() < tile_row_bytes * tile_height) {
            messages_->error = "tile buffer smaller than the tile";
            return false;
        }
        for (std::uint32_t y = 0; y < layout_.shape.rows; y += tile_height) {
            for (std::uint32_t x = 0; x < layout_.shape.cols; x += tile_width) {
                if (TIFFReadTile(tif, tile.data(), x, y, 0, 0) < 0) {
                    return false;
                }
                const std::size_t rows = std::min<std::size_t>(tile_height, layout_.shape.rows - y);
                const std::size_t cols = std::min<std::size_t>(tile_width, layout_.shape.cols - x);
                for (std::size_t r = 0; r < rows; ++r) {
                    std::memcpy(pixels + (y + r) * row_bytes() + x * pixel_bytes,
                                tile.data() + r * tile_row_bytes, cols * pixel_bytes);
                }
            }
        }
        return true;
    }

    std::string label_;
    std::unique_ptr<TiffMessages> messages_;  // the handlers' user data: outlives tif_
    TiffPtr tif_;
    PageLayout layout_;
    std::size_t frame_count_;
};

}  // namespace

Result<std::unique_ptr<FrameSource>> open_tiff_source(const std::filesystem::path& file) {
    silence_libtiff();
    const std::string label = file.string();
    std::error_code ec;
    const auto status = std::filesystem::status(file, ec);
    if (!std::filesystem::exists(status)) {
        return fail(ErrorCode::kNotFound, "{}: file not found", label);
    }
    if (std::filesystem::is_directory(status)) {
        return fail(ErrorCode::kInvalidArgument, "{}: is a directory, not a file", label);
    }

    auto messages = std::make_unique<TiffMessages>();
    TIFFOpenOptions* options = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(options, capture_error, messages.get());
    TIFFOpenOptionsSetWarningHandlerExtR(options, capture_warning, messages.get());
    TiffPtr tif(TIFFOpenExt(label.c_str(), "r", options));
    TIFFOpenOptionsFree(options);
    if (!tif) {
        return fail(ErrorCode::kCorrupt, "{}: cannot read TIFF file (truncated or not TIFF?): {}",
                    label, messages->error.empty() ? "unknown libtiff error" : messages->error);
    }

    // Walk every directory once: all pages must be frames of one shape and type.
    auto first = read_layout(tif.get());
    if (!first) {
        return tl::unexpected(first.error().with_context(label));
    }
    if (auto size = check_frame_bytes(first->shape, first->type, label); !size) {
        return tl::unexpected(size.error());
    }
    std::size_t pages = 1;
    while (true) {
        messages->error.clear();
        if (TIFFReadDirectory(tif.get()) != 1) {
            if (!messages->error.empty()) {
                return fail(ErrorCode::kCorrupt, "{}: cannot read page {}: {}", label, pages,
                            messages->error);
            }
            break;
        }
        auto layout = read_layout(tif.get());
        if (!layout) {
            return tl::unexpected(
                layout.error().with_context(fmt::format("{} page {}", label, pages)));
        }
        if (*layout != *first) {
            return fail(ErrorCode::kUnsupported,
                        "{}: page {} is {} {} but page 0 is {} {}; all pages must match", label,
                        pages, format_shape(layout->shape), to_string(layout->type),
                        format_shape(first->shape), to_string(first->type));
        }
        ++pages;
    }
    if (TIFFSetDirectory(tif.get(), 0) != 1) {
        return fail(ErrorCode::kCorrupt, "{}: cannot return to page 0: {}", label, messages->error);
    }
    return std::make_unique<TiffFrameSource>(label, std::move(messages), std::move(tif), *first,
                                             pages);
}

}  // namespace anisoflow::io::detail
