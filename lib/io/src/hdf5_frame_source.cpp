// HDF5 frames: a 2D dataset is one frame, a 3D dataset [n, rows, cols] a stack read one hyperslab
// at a time; chunked and compressed datasets are decoded by HDF5 itself.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "hdf5_util.hpp"
#include "sources.hpp"

namespace anisoflow::io::detail {
namespace {

constexpr std::size_t kDefaultChunkCacheBytes = std::size_t{1} << 20;  // HDF5's default
constexpr std::size_t kMaxChunkCacheBytes = std::size_t{256} << 20;    // bound per open stack
/// Most chunks one frame may be split into. HDF5 1.10 builds an entry (with its own dataspace
/// selections) for every chunk a read selects, stored or not: about 2.4 KB each, so an 11 kB file
/// declaring 30-pixel chunks made one 50 MB frame read take 2 GB (fuzz_io_hdf5). 65,536 chunks
/// cost HDF5 about 160 MB, and a 4096 x 4096 frame tiled in 16 x 16 pixels still opens.
constexpr std::uint64_t kMaxChunksPerFrame = std::uint64_t{1} << 16;
/// Widest numeric element read, bytes: 128-bit integers and x86 long doubles still convert to
/// float64. A corrupt datatype message can declare gigabytes per element, and HDF5 allocates and
/// fills a conversion buffer of at least one element before it reads anything: 2 GB for a 4 x 4
/// mask, or a single malloc beyond libFuzzer's limit (fuzz_io_hdf5).
constexpr std::size_t kMaxElementBytes = 16;

/// Refuses an integer or float element of 0 bytes (H5Tget_size's error value) or wider than
/// kMaxElementBytes, before HDF5 is asked to convert it.
Result<void> check_element_size(std::size_t size, const char* type_name) {
    if (size == 0 || size > kMaxElementBytes) {
        return fail(ErrorCode::kUnsupported,
                    "unsupported {}-byte {} data type (numbers of 1 to {} bytes are read)", size,
                    type_name, kMaxElementBytes);
    }
    return {};
}

struct TypeChoice {
    PixelType pixel_type;
    hid_t memory_type;  // a predefined native type: never closed
};

Result<TypeChoice> choose_type(hid_t file_type) {
    const H5T_class_t type_class = H5Tget_class(file_type);
    const std::size_t size = H5Tget_size(file_type);
    if (type_class == H5T_INTEGER || type_class == H5T_FLOAT) {
        if (auto width = check_element_size(size, type_class == H5T_INTEGER ? "integer" : "float");
            !width) {
            return tl::unexpected(width.error());
        }
    }
    if (type_class == H5T_INTEGER) {
        const bool is_signed = H5Tget_sign(file_type) == H5T_SGN_2;
        switch (size) {
            case 1:
                return is_signed ? TypeChoice{PixelType::kInt8, H5T_NATIVE_INT8}
                                 : TypeChoice{PixelType::kUint8, H5T_NATIVE_UINT8};
            case 2:
                return is_signed ? TypeChoice{PixelType::kInt16, H5T_NATIVE_INT16}
                                 : TypeChoice{PixelType::kUint16, H5T_NATIVE_UINT16};
            case 4:
                return is_signed ? TypeChoice{PixelType::kInt32, H5T_NATIVE_INT32}
                                 : TypeChoice{PixelType::kUint32, H5T_NATIVE_UINT32};
            default:  // 64-bit integers: converted to float64 (PixelType has no 64-bit ints)
                return TypeChoice{PixelType::kFloat64, H5T_NATIVE_DOUBLE};
        }
    }
    if (type_class == H5T_FLOAT) {
        return size == 4 ? TypeChoice{PixelType::kFloat32, H5T_NATIVE_FLOAT}
                         : TypeChoice{PixelType::kFloat64, H5T_NATIVE_DOUBLE};
    }
    const char* name = "non-numeric";
    switch (type_class) {
        case H5T_STRING:
            name = "string";
            break;
        case H5T_COMPOUND:
            name = "compound";
            break;
        case H5T_ENUM:
            name = "enum";
            break;
        case H5T_ARRAY:
            name = "array";
            break;
        case H5T_VLEN:
            name = "variable-length";
            break;
        case H5T_OPAQUE:
            name = "opaque";
            break;
        case H5T_BITFIELD:
            name = "bitfield";
            break;
        case H5T_REFERENCE:
            name = "reference";
            break;
        default:
            break;
    }
    return fail(ErrorCode::kUnsupported,
                "unsupported {} data type (frames must be integers or floats)", name);
}

/// The chunk dimensions of a chunked dataset of rank `rank`; empty when it is not chunked.
std::optional<std::vector<hsize_t>> chunk_dims(hid_t dataset, std::size_t rank) {
    Hid create_plist = plist_handle(H5Dget_create_plist(dataset));
    if (!create_plist || H5Pget_layout(create_plist.get()) != H5D_CHUNKED) {
        return std::nullopt;
    }
    std::vector<hsize_t> chunk(rank);
    if (H5Pget_chunk(create_plist.get(), static_cast<int>(chunk.size()), chunk.data()) !=
        static_cast<int>(rank)) {
        return std::nullopt;
    }
    return chunk;
}

/// Refuses chunks that split one frame (the last two axes) into more than kMaxChunksPerFrame,
/// before a read asks HDF5 for its per-chunk bookkeeping. The frame itself already fits
/// kMaxFrameBytes, so the count (at most its pixel count) cannot overflow.
Result<void> check_chunks_per_frame(const std::vector<hsize_t>& chunk,
                                    const std::vector<hsize_t>& dims, const std::string& label) {
    std::uint64_t chunks = 1;
    for (std::size_t axis = dims.size() - 2; axis < dims.size(); ++axis) {
        if (chunk[axis] > 0) {  // a corrupt 0 must not divide by zero
            chunks *= (dims[axis] + chunk[axis] - 1) / chunk[axis];
        }
    }
    if (chunks > kMaxChunksPerFrame) {
        return fail(ErrorCode::kUnsupported,
                    "{}: chunks of {} in a dataset of shape {} split each frame into {} chunks, "
                    "more than the {} a frame may span (rewrite the file with larger chunks)",
                    label, format_dims(chunk), format_dims(dims), chunks, kMaxChunksPerFrame);
    }
    return {};
}

/// Chunk cache able to hold one frame's worth of chunks, so a chunk spanning several frames is
/// decompressed once rather than once per frame. Empty when HDF5's default already suffices.
std::optional<std::size_t> chunk_cache_bytes(const std::vector<hsize_t>& chunk,
                                             std::size_t element_bytes,
                                             const std::vector<hsize_t>& dims) {
    std::size_t chunk_bytes = element_bytes;
    std::size_t chunks_per_frame = 1;
    for (std::size_t axis = 0; axis < dims.size(); ++axis) {
        chunk_bytes *= chunk[axis];
        const bool frame_axis = axis + 2 >= dims.size();
        if (frame_axis && chunk[axis] > 0) {
            chunks_per_frame *= (dims[axis] + chunk[axis] - 1) / chunk[axis];
        }
    }
    const std::size_t needed = chunk_bytes * chunks_per_frame;
    if (needed <= kDefaultChunkCacheBytes) {
        return std::nullopt;
    }
    return std::min(needed, kMaxChunkCacheBytes);
}

class Hdf5FrameSource final : public FrameSource {
  public:
    Hdf5FrameSource(std::string label, Hid file, Hid dataset, TypeChoice type, FrameShape shape,
                    std::size_t frame_count, bool is_stack, std::vector<double> exposure_s)
        : label_(std::move(label)),
          file_(std::move(file)),
          dataset_(std::move(dataset)),
          type_(type),
          shape_(shape),
          frame_count_(frame_count),
          is_stack_(is_stack),
          exposure_s_(std::move(exposure_s)) {}

    FrameShape shape() const override { return shape_; }
    PixelType pixel_type() const override { return type_.pixel_type; }
    std::size_t frame_count() const override { return frame_count_; }
    std::string describe() const override { return label_; }

    Result<Frame> read_frame_at(std::size_t index) override {
        Hid file_space = space_handle(H5Dget_space(dataset_.get()));
        if (is_stack_) {
            const hsize_t start[3] = {index, 0, 0};
            const hsize_t count[3] = {1, shape_.rows, shape_.cols};
            if (!file_space || H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr,
                                                   count, nullptr) < 0) {
                return fail(ErrorCode::kIo, "{}: cannot select frame {}: {}", label_, index,
                            hdf5_error_detail());
            }
        }
        const hsize_t memory_dims[2] = {shape_.rows, shape_.cols};
        Hid memory_space = space_handle(H5Screate_simple(2, memory_dims, nullptr));

        Frame frame;
        frame.shape = shape_;
        frame.index_in_source = index;
        frame.pixels = allocate_pixels(type_.pixel_type, shape_.pixel_count());
        if (H5Dread(dataset_.get(), type_.memory_type, memory_space.get(), file_space.get(),
                    H5P_DEFAULT, pixel_data(frame.pixels)) < 0) {
            return fail(ErrorCode::kCorrupt, "{}: cannot read frame {} (truncated or corrupt?): {}",
                        label_, index, hdf5_error_detail());
        }
        if (exposure_s_.size() == 1) {
            frame.exposure_s = exposure_s_.front();
        } else if (!exposure_s_.empty()) {
            frame.exposure_s = exposure_s_[index];
        }
        return frame;
    }

  private:
    std::string label_;
    Hid file_;  // declared before dataset_: closed after it
    Hid dataset_;
    TypeChoice type_;
    FrameShape shape_;
    std::size_t frame_count_;
    bool is_stack_;
    std::vector<double> exposure_s_;  // empty, one value for all frames, or one per frame
};

/// count_time as one value for every frame or one per frame; empty when the file has none.
Result<std::vector<double>> read_count_time(hid_t file, std::size_t frame_count) {
    const std::string path(kCountTimeDataset);
    if (!dataset_exists(file, path)) {
        return std::vector<double>{};
    }
    auto dataset = open_dataset(file, path);
    if (!dataset) {
        return tl::unexpected(dataset.error());
    }
    Hid file_type = type_handle(H5Dget_type(dataset->get()));
    const H5T_class_t type_class = H5Tget_class(file_type.get());
    if (type_class != H5T_INTEGER && type_class != H5T_FLOAT) {
        return fail(ErrorCode::kUnsupported, "{} is not numeric", path);
    }
    if (auto width = check_element_size(H5Tget_size(file_type.get()),
                                        type_class == H5T_INTEGER ? "integer" : "float");
        !width) {
        return tl::unexpected(width.error().with_context(path));
    }
    const auto dims = dataset_dims(dataset->get());
    if (dims.size() > 1) {
        return fail(ErrorCode::kUnsupported,
                    "{} has shape {}; expected a scalar or one value per "
                    "frame",
                    path, format_dims(dims));
    }
    const std::size_t n = dims.empty() ? 1 : dims.front();
    if (n != 1 && n != frame_count) {
        return fail(ErrorCode::kCorrupt, "{} has {} values for {} frames", path, n, frame_count);
    }
    std::vector<double> values(n);
    if (n > 0 && H5Dread(dataset->get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                         values.data()) < 0) {
        return fail(ErrorCode::kCorrupt, "cannot read {}: {}", path, hdf5_error_detail());
    }
    return values;
}

}  // namespace

Result<std::unique_ptr<FrameSource>> open_hdf5_source(const std::filesystem::path& file_path,
                                                      const std::string& dataset_path_given) {
    const std::string dataset_path = absolute_hdf5_path(dataset_path_given);
    const std::string label = fmt::format("{}::{}", file_path.string(), dataset_path);
    auto file = open_hdf5_file(file_path);
    if (!file) {
        return tl::unexpected(file.error());
    }
    auto dataset = open_dataset(file->get(), dataset_path);
    if (!dataset) {
        return tl::unexpected(dataset.error().with_context(file_path.string()));
    }

    Hid file_type = type_handle(H5Dget_type(dataset->get()));
    auto type = choose_type(file_type.get());
    if (!type) {
        return tl::unexpected(type.error().with_context(label));
    }
    const auto dims = dataset_dims(dataset->get());
    if (dims.size() != 2 && dims.size() != 3) {
        return fail(ErrorCode::kUnsupported,
                    "{}: dataset has rank {} (shape {}); frames need rank 2 [rows, cols] or "
                    "rank 3 [n, rows, cols]",
                    label, dims.size(), format_dims(dims));
    }
    const bool is_stack = dims.size() == 3;
    const FrameShape shape{dims[dims.size() - 2], dims[dims.size() - 1]};
    const std::size_t frame_count = is_stack ? dims[0] : 1;
    if (auto size = check_frame_bytes(shape, type->pixel_type, label); !size) {
        return tl::unexpected(size.error());
    }
    if (shape.pixel_count() == 0) {
        return fail(ErrorCode::kCorrupt, "{}: frames are empty (shape {})", label,
                    format_dims(dims));
    }
    if (frame_count == 0) {
        return fail(ErrorCode::kCorrupt, "{}: stack holds no frames (shape {})", label,
                    format_dims(dims));
    }

    const auto chunk = chunk_dims(dataset->get(), dims.size());
    if (chunk) {
        if (auto chunks = check_chunks_per_frame(*chunk, dims, label); !chunks) {
            return tl::unexpected(chunks.error());
        }
    }
    const auto cache_bytes =
        chunk ? chunk_cache_bytes(*chunk, pixel_size_bytes(type->pixel_type), dims) : std::nullopt;
    if (cache_bytes) {
        // Reopen with a chunk cache big enough for one frame's chunks (see chunk_cache_bytes).
        constexpr std::size_t kSlotsPerMiB = 100;  // HDF5 advises ~100 hash slots per cached MiB
        Hid access = plist_handle(H5Pcreate(H5P_DATASET_ACCESS));
        if (access && H5Pset_chunk_cache(access.get(), (*cache_bytes >> 20) * kSlotsPerMiB + 1,
                                         *cache_bytes, H5D_CHUNK_CACHE_W0_DEFAULT) >= 0) {
            Hid reopened =
                dataset_handle(H5Dopen2(file->get(), dataset_path.c_str(), access.get()));
            if (reopened) {
                *dataset = std::move(reopened);
            }
        }
    }

    auto exposure = read_count_time(file->get(), frame_count);
    if (!exposure) {
        return tl::unexpected(exposure.error().with_context(file_path.string()));
    }
    return std::make_unique<Hdf5FrameSource>(label, std::move(*file), std::move(*dataset), *type,
                                             shape, frame_count, is_stack, std::move(*exposure));
}

}  // namespace anisoflow::io::detail
