// Frame specs (SPEC 8): a file with an optional `::/dataset`, or a glob of files, and the
// concatenation of several of them into one source.

#include "anisoflow/io/frame_source.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <iterator>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <glob.h>

#include "sources.hpp"

namespace anisoflow::io {
namespace detail {

namespace {
constexpr std::string_view kKnownExtensions =
    ".h5, .hdf5, .nxs, .hdf, .tif, .tiff, .ge, .ge2, .ge3, .ge5";
}  // namespace

Result<FileFormat> format_of(const std::string& file) {
    std::string extension = std::filesystem::path(file).extension().string();
    std::transform(extension.begin(), extension.end(), extension.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (extension == ".h5" || extension == ".hdf5" || extension == ".nxs" || extension == ".hdf") {
        return FileFormat::kHdf5;
    }
    if (extension == ".tif" || extension == ".tiff") {
        return FileFormat::kTiff;
    }
    if (extension == ".ge" || extension == ".ge2" || extension == ".ge3" || extension == ".ge5") {
        return FileFormat::kGe;
    }
    return fail(ErrorCode::kUnsupported, "{}: unknown frame file type '{}' (expected {})", file,
                extension, kKnownExtensions);
}

}  // namespace detail

namespace {

using detail::FileFormat;
using detail::format_of;

/// One file to open: the unit a concatenation is made of.
struct Leaf {
    std::string file;
    FileFormat format = FileFormat::kHdf5;
    std::string dataset;  ///< HDF5 only
};

bool has_glob_characters(std::string_view text) {
    return text.find_first_of("*?[") != std::string_view::npos;
}

/// Files matching a shell pattern, byte-wise sorted; directories are skipped.
Result<std::vector<std::string>> expand_glob(const std::string& pattern) {
    glob_t matches{};
    // glob(3) is not thread-safe; frame sources are opened from one thread (docs/io.md).
    const int status =
        ::glob(pattern.c_str(), 0, nullptr, &matches);  // NOLINT(concurrency-mt-unsafe)
    std::vector<std::string> files;
    if (status == 0) {
        for (std::size_t i = 0; i < matches.gl_pathc; ++i) {
            std::error_code ec;
            if (!std::filesystem::is_directory(matches.gl_pathv[i], ec)) {
                files.emplace_back(matches.gl_pathv[i]);
            }
        }
    }
    ::globfree(&matches);
    if (status != 0 && status != GLOB_NOMATCH) {
        return fail(ErrorCode::kIo, "cannot expand the pattern '{}' (read error)", pattern);
    }
    if (files.empty()) {
        return fail(ErrorCode::kNotFound, "no file matches the pattern '{}'", pattern);
    }
    std::sort(files.begin(), files.end());
    return files;
}

Result<Leaf> make_leaf(const std::string& file, const std::optional<std::string>& dataset) {
    auto format = format_of(file);
    if (!format) {
        return tl::unexpected(format.error());
    }
    if (dataset && *format != FileFormat::kHdf5) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: a '::{}' dataset selection only applies to HDF5 files", file, *dataset);
    }
    return Leaf{file, *format, dataset.value_or(std::string(kDefaultFrameDataset))};
}

/// The files one spec stands for: itself, or the matches of its glob.
Result<std::vector<Leaf>> expand_spec(std::string_view spec) {
    if (spec.empty()) {
        return fail(ErrorCode::kInvalidArgument, "empty frame spec");
    }
    std::string file(spec);
    std::optional<std::string> dataset;
    if (const auto separator = spec.find("::"); separator != std::string_view::npos) {
        file = std::string(spec.substr(0, separator));
        dataset = std::string(spec.substr(separator + 2));
        if (dataset->empty() || file.empty()) {
            return fail(ErrorCode::kInvalidArgument,
                        "'{}': expected file.h5::/dataset with both parts given", spec);
        }
    }
    std::error_code ec;
    std::vector<std::string> files;
    if (!std::filesystem::exists(file, ec) && has_glob_characters(file)) {
        auto matches = expand_glob(file);
        if (!matches) {
            return tl::unexpected(matches.error());
        }
        files = std::move(*matches);
    } else {
        files.push_back(file);
    }
    std::vector<Leaf> leaves;
    leaves.reserve(files.size());
    for (const auto& match : files) {
        auto leaf = make_leaf(match, dataset);
        if (!leaf) {
            return tl::unexpected(leaf.error());
        }
        leaves.push_back(std::move(*leaf));
    }
    return leaves;
}

Result<std::unique_ptr<FrameSource>> open_leaf(const Leaf& leaf) {
    switch (leaf.format) {
        case FileFormat::kHdf5:
            return detail::open_hdf5_source(leaf.file, leaf.dataset);
        case FileFormat::kTiff:
            return detail::open_tiff_source(leaf.file);
        case FileFormat::kGe:
            return detail::open_ge_source(leaf.file);
    }
    return fail(ErrorCode::kUnsupported, "{}: unknown file format", leaf.file);
}

/// Several files read as one stream. Only the file being read is held open; the others are
/// reopened when reached (and checked not to have changed since they were first opened).
class ConcatenatedSource final : public FrameSource {
  public:
    struct Part {
        Leaf leaf;
        std::string description;
        std::size_t first_frame = 0;
        std::size_t frame_count = 0;
    };

    ConcatenatedSource(std::vector<Part> parts, FrameShape shape, PixelType type,
                       std::unique_ptr<FrameSource> last_open)
        : parts_(std::move(parts)),
          shape_(shape),
          type_(type),
          open_(std::move(last_open)),
          open_part_(parts_.size() - 1) {}

    FrameShape shape() const override { return shape_; }
    PixelType pixel_type() const override { return type_; }
    std::size_t frame_count() const override {
        return parts_.back().first_frame + parts_.back().frame_count;
    }
    std::string describe() const override {
        if (parts_.size() <= 3) {
            std::string text;
            for (const auto& part : parts_) {
                text += (text.empty() ? "" : " + ") + part.description;
            }
            return text;
        }
        return fmt::format("{} + ... + {} ({} files)", parts_.front().description,
                           parts_.back().description, parts_.size());
    }

    Result<Frame> read_frame_at(std::size_t index) override {
        const auto after =
            std::upper_bound(parts_.begin(), parts_.end(), index,
                             [](std::size_t i, const Part& part) { return i < part.first_frame; });
        const auto part_index = static_cast<std::size_t>(after - parts_.begin()) - 1;
        const Part& part = parts_[part_index];
        if (part_index != open_part_ || !open_) {
            open_.reset();  // one file handle at a time
            auto source = open_leaf(part.leaf);
            if (!source) {
                return tl::unexpected(source.error());
            }
            if ((*source)->shape() != shape_ || (*source)->pixel_type() != type_ ||
                (*source)->frame_count() != part.frame_count) {
                return fail(ErrorCode::kCorrupt, "{}: file changed since it was first opened",
                            part.description);
            }
            open_ = std::move(*source);
            open_part_ = part_index;
        }
        auto frame = open_->read_frame(index - part.first_frame);
        if (frame) {
            frame->index_in_source = index;
        }
        return frame;
    }

  private:
    std::vector<Part> parts_;
    FrameShape shape_;
    PixelType type_;
    std::unique_ptr<FrameSource> open_;
    std::size_t open_part_;
};

Result<std::unique_ptr<FrameSource>> concatenate(std::vector<Leaf> leaves) {
    if (leaves.size() == 1) {
        return open_leaf(leaves.front());
    }
    std::vector<ConcatenatedSource::Part> parts;
    parts.reserve(leaves.size());
    std::unique_ptr<FrameSource> last;
    FrameShape shape;
    PixelType type = PixelType::kUint16;
    std::size_t next_frame = 0;
    for (auto& leaf : leaves) {
        last.reset();  // one file handle at a time
        auto source = open_leaf(leaf);
        if (!source) {
            return tl::unexpected(source.error());
        }
        last = std::move(*source);
        if (parts.empty()) {
            shape = last->shape();
            type = last->pixel_type();
        } else if (last->shape() != shape) {
            return fail(ErrorCode::kInvalidArgument,
                        "{}: frame shape {} differs from {} of {}; concatenated frames must "
                        "share one shape",
                        last->describe(), format_shape(last->shape()), format_shape(shape),
                        parts.front().description);
        } else if (last->pixel_type() != type) {
            return fail(ErrorCode::kInvalidArgument,
                        "{}: pixel type {} differs from {} of {}; concatenated frames must share "
                        "one pixel type",
                        last->describe(), to_string(last->pixel_type()), to_string(type),
                        parts.front().description);
        }
        parts.push_back({std::move(leaf), last->describe(), next_frame, last->frame_count()});
        next_frame += last->frame_count();
    }
    return std::make_unique<ConcatenatedSource>(std::move(parts), shape, type, std::move(last));
}

}  // namespace

std::string format_shape(FrameShape shape) { return fmt::format("{}x{}", shape.rows, shape.cols); }

Result<Frame> FrameSource::read_frame(std::size_t index) {
    if (index >= frame_count()) {
        return fail(ErrorCode::kInvalidArgument, "{}: frame index {} out of range ({} frames)",
                    describe(), index, frame_count());
    }
    return read_frame_at(index);
}

Result<std::unique_ptr<FrameSource>> open_frame_source(std::string_view spec) {
    auto leaves = expand_spec(spec);
    if (!leaves) {
        return tl::unexpected(leaves.error());
    }
    return concatenate(std::move(*leaves));
}

Result<std::unique_ptr<FrameSource>> open_frame_sources(const std::vector<std::string>& specs) {
    if (specs.empty()) {
        return fail(ErrorCode::kInvalidArgument, "no frame files given");
    }
    std::vector<Leaf> leaves;
    for (const auto& spec : specs) {
        auto expanded = expand_spec(spec);
        if (!expanded) {
            return tl::unexpected(expanded.error());
        }
        std::move(expanded->begin(), expanded->end(), std::back_inserter(leaves));
    }
    return concatenate(std::move(leaves));
}

Result<void> check_shape(const FrameSource& source, FrameShape expected) {
    if (source.shape() != expected) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: frame shape {} does not match the detector's {}", source.describe(),
                    format_shape(source.shape()), format_shape(expected));
    }
    return {};
}

}  // namespace anisoflow::io
