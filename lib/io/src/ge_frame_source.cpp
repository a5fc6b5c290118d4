// GE amorphous-silicon raw files (.ge .ge2 .ge3 .ge5, SPEC 8): an 8192-byte header we skip, then
// little-endian uint16 2048x2048 frames back to back; the frame count follows from the file size.

#include <bit>
#include <cerrno>
#include <cstdint>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "sources.hpp"

namespace anisoflow::io::detail {
namespace {

constexpr std::size_t kGeFrameBytes =
    kGeFrameShape.rows * kGeFrameShape.cols * sizeof(std::uint16_t);

class GeFrameSource final : public FrameSource {
  public:
    GeFrameSource(std::string label, std::ifstream stream, std::size_t frame_count)
        : label_(std::move(label)), stream_(std::move(stream)), frame_count_(frame_count) {}

    FrameShape shape() const override { return kGeFrameShape; }
    PixelType pixel_type() const override { return PixelType::kUint16; }
    std::size_t frame_count() const override { return frame_count_; }
    std::string describe() const override { return label_; }

    Result<Frame> read_frame_at(std::size_t index) override {
        std::vector<std::uint16_t> pixels(kGeFrameShape.pixel_count());
        stream_.clear();
        stream_.seekg(static_cast<std::streamoff>(kGeHeaderBytes + index * kGeFrameBytes));
        stream_.read(reinterpret_cast<char*>(pixels.data()),
                     static_cast<std::streamsize>(kGeFrameBytes));
        if (!stream_ || static_cast<std::size_t>(stream_.gcount()) != kGeFrameBytes) {
            return fail(ErrorCode::kCorrupt,
                        "{}: short read of frame {}: got {} of {} bytes (file truncated since it "
                        "was opened?)",
                        label_, index, stream_.gcount(), kGeFrameBytes);
        }
        if constexpr (std::endian::native == std::endian::big) {
            for (auto& pixel : pixels) {
                pixel = static_cast<std::uint16_t>((pixel >> 8) | (pixel << 8));
            }
        }
        Frame frame = Frame::from_vector(kGeFrameShape, std::move(pixels));
        frame.index_in_source = index;
        return frame;
    }

  private:
    std::string label_;
    std::ifstream stream_;
    std::size_t frame_count_;
};

}  // namespace

Result<std::unique_ptr<FrameSource>> open_ge_source(const std::filesystem::path& file) {
    const std::string label = file.string();
    std::error_code ec;
    const auto status = std::filesystem::status(file, ec);
    if (!std::filesystem::exists(status)) {
        return fail(ErrorCode::kNotFound, "{}: file not found", label);
    }
    if (!std::filesystem::is_regular_file(status)) {
        return fail(ErrorCode::kInvalidArgument, "{}: not a regular file", label);
    }
    const std::uintmax_t size = std::filesystem::file_size(file, ec);
    if (ec) {
        return fail(ErrorCode::kIo, "{}: cannot get file size: {}", label, ec.message());
    }
    if (size < kGeHeaderBytes || (size - kGeHeaderBytes) % kGeFrameBytes != 0) {
        const std::uintmax_t data = size < kGeHeaderBytes ? 0 : size - kGeHeaderBytes;
        return fail(ErrorCode::kCorrupt,
                    "{}: truncated GE file: {} bytes is not the {}-byte header plus whole "
                    "{}-byte frames ({} whole frames and {} bytes left over)",
                    label, size, kGeHeaderBytes, kGeFrameBytes, data / kGeFrameBytes,
                    size < kGeHeaderBytes ? size : data % kGeFrameBytes);
    }
    const std::size_t frame_count = (size - kGeHeaderBytes) / kGeFrameBytes;
    if (frame_count == 0) {
        return fail(ErrorCode::kCorrupt, "{}: GE file holds a header but no frames ({} bytes)",
                    label, size);
    }
    std::ifstream stream(file, std::ios::binary);
    if (!stream) {
        return fail(ErrorCode::kIo, "{}: cannot open: {}", label,
                    std::generic_category().message(errno));
    }
    return std::make_unique<GeFrameSource>(label, std::move(stream), frame_count);
}

}  // namespace anisoflow::io::detail
