#include "anisoflow/io/frame_stack_writer.hpp"

#include <array>
#include <string>
#include <variant>

#include <hdf5.h>

#include "hdf5_util.hpp"

namespace anisoflow::io {

namespace {

using detail::Hid;

// Memory (native) and file (little-endian) types of each pixel type.
std::pair<hid_t, hid_t> hdf5_types(PixelType type) {
    switch (type) {
        case PixelType::kUint8:
            return {H5T_NATIVE_UINT8, H5T_STD_U8LE};
        case PixelType::kUint16:
            return {H5T_NATIVE_UINT16, H5T_STD_U16LE};
        case PixelType::kUint32:
            return {H5T_NATIVE_UINT32, H5T_STD_U32LE};
        case PixelType::kInt8:
            return {H5T_NATIVE_INT8, H5T_STD_I8LE};
        case PixelType::kInt16:
            return {H5T_NATIVE_INT16, H5T_STD_I16LE};
        case PixelType::kInt32:
            return {H5T_NATIVE_INT32, H5T_STD_I32LE};
        case PixelType::kFloat32:
            return {H5T_NATIVE_FLOAT, H5T_IEEE_F32LE};
        case PixelType::kFloat64:
            return {H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE};
    }
    return {H5T_NATIVE_UINT16, H5T_STD_U16LE};
}

bool write_string_attribute(hid_t object, const char* name, const std::string& value) {
    Hid type = detail::type_handle(H5Tcopy(H5T_C_S1));
    if (!type || H5Tset_size(type.get(), value.size()) < 0) {
        return false;
    }
    Hid space = detail::space_handle(H5Screate(H5S_SCALAR));
    Hid attribute = detail::attribute_handle(
        H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
    return attribute && H5Awrite(attribute.get(), type.get(), value.data()) >= 0;
}

}  // namespace

struct FrameStackWriter::State {
    std::filesystem::path path;
    FrameShape shape;
    PixelType type = PixelType::kUint16;
    Hid file;
    Hid dataset;
    std::size_t frames = 0;
};

FrameStackWriter::FrameStackWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}
FrameStackWriter::FrameStackWriter(FrameStackWriter&&) noexcept = default;
FrameStackWriter& FrameStackWriter::operator=(FrameStackWriter&&) noexcept = default;
FrameStackWriter::~FrameStackWriter() { (void)close(); }

std::size_t FrameStackWriter::frames_written() const { return state_ ? state_->frames : 0; }

Result<FrameStackWriter> FrameStackWriter::create(const std::filesystem::path& path,
                                                  FrameShape shape, PixelType type,
                                                  const FrameStackOptions& options) {
    detail::silence_hdf5_errors();
    if (shape.pixel_count() == 0) {
        return fail(ErrorCode::kInvalidArgument, "{}: frame shape {}x{} is empty", path.string(),
                    shape.rows, shape.cols);
    }
    auto state = std::make_unique<State>();
    state->path = path;
    state->shape = shape;
    state->type = type;
    state->file =
        detail::file_handle(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    if (!state->file) {
        return fail(ErrorCode::kIo, "{}: cannot create HDF5 file: {}", path.string(),
                    detail::hdf5_error_detail());
    }
    const hid_t file = state->file.get();
    Hid link_create = detail::plist_handle(H5Pcreate(H5P_LINK_CREATE));
    H5Pset_create_intermediate_group(link_create.get(), 1);
    {
        Hid entry =
            detail::group_handle(H5Gcreate2(file, "/entry", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        Hid data = detail::group_handle(
            H5Gcreate2(file, "/entry/data", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        if (!entry || !data || !write_string_attribute(entry.get(), "NX_class", "NXentry") ||
            !write_string_attribute(data.get(), "NX_class", "NXdata") ||
            !write_string_attribute(data.get(), "signal", "data")) {
            return fail(ErrorCode::kIo, "{}: cannot write the NeXus groups: {}", path.string(),
                        detail::hdf5_error_detail());
        }
    }
    const std::array<hsize_t, 3> initial = {0, shape.rows, shape.cols};
    const std::array<hsize_t, 3> maximum = {H5S_UNLIMITED, shape.rows, shape.cols};
    const std::array<hsize_t, 3> chunk = {1, shape.rows, shape.cols};  // one frame per chunk
    Hid space = detail::space_handle(H5Screate_simple(3, initial.data(), maximum.data()));
    Hid create = detail::plist_handle(H5Pcreate(H5P_DATASET_CREATE));
    bool ok = space && create && H5Pset_chunk(create.get(), 3, chunk.data()) >= 0;
    if (ok && options.gzip_level > 0) {
        ok = H5Pset_shuffle(create.get()) >= 0 &&
             H5Pset_deflate(create.get(), static_cast<unsigned>(options.gzip_level)) >= 0;
    }
    if (ok) {
        state->dataset =
            detail::dataset_handle(H5Dcreate2(file, "/entry/data/data", hdf5_types(type).second,
                                              space.get(), H5P_DEFAULT, create.get(), H5P_DEFAULT));
    }
    if (!ok || !state->dataset) {
        return fail(ErrorCode::kIo, "{}: cannot create /entry/data/data: {}", path.string(),
                    detail::hdf5_error_detail());
    }
    if (options.count_time_s) {
        Hid scalar = detail::space_handle(H5Screate(H5S_SCALAR));
        Hid count_time = detail::dataset_handle(
            H5Dcreate2(file, "/entry/instrument/detector/count_time", H5T_IEEE_F64LE, scalar.get(),
                       link_create.get(), H5P_DEFAULT, H5P_DEFAULT));
        if (!count_time || H5Dwrite(count_time.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                                    H5P_DEFAULT, &*options.count_time_s) < 0) {
            return fail(ErrorCode::kIo, "{}: cannot write count_time: {}", path.string(),
                        detail::hdf5_error_detail());
        }
    }
    return FrameStackWriter(std::move(state));
}

Result<void> FrameStackWriter::append(const FrameView& frame) {
    if (!state_ || !state_->file) {
        return fail(ErrorCode::kInvalidArgument, "frame stack writer is closed");
    }
    State& s = *state_;
    if (frame.shape != s.shape || frame.pixel_type() != s.type) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: frame {}x{} {} does not match the stack's {}x{} {}", s.path.string(),
                    frame.shape.rows, frame.shape.cols, to_string(frame.pixel_type()), s.shape.rows,
                    s.shape.cols, to_string(s.type));
    }
    const std::array<hsize_t, 3> extent = {s.frames + 1, s.shape.rows, s.shape.cols};
    const std::array<hsize_t, 3> start = {s.frames, 0, 0};
    const std::array<hsize_t, 3> count = {1, s.shape.rows, s.shape.cols};
    bool ok = H5Dset_extent(s.dataset.get(), extent.data()) >= 0;
    Hid file_space = detail::space_handle(H5Dget_space(s.dataset.get()));
    Hid memory_space = detail::space_handle(H5Screate_simple(3, count.data(), nullptr));
    ok = ok && file_space && memory_space &&
         H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                             nullptr) >= 0;
    const void* data =
        std::visit([](const auto& span) -> const void* { return span.data(); }, frame.pixels);
    ok = ok && H5Dwrite(s.dataset.get(), hdf5_types(s.type).first, memory_space.get(),
                        file_space.get(), H5P_DEFAULT, data) >= 0;
    if (!ok) {
        return fail(ErrorCode::kIo, "{}: cannot append frame {}: {}", s.path.string(), s.frames,
                    detail::hdf5_error_detail());
    }
    ++s.frames;
    return {};
}

Result<void> FrameStackWriter::close() {
    if (!state_ || !state_->file) {
        return {};
    }
    state_->dataset = Hid();
    const bool flushed = H5Fflush(state_->file.get(), H5F_SCOPE_LOCAL) >= 0;
    state_->file = Hid();
    if (!flushed) {
        return fail(ErrorCode::kIo, "{}: cannot flush: {}", state_->path.string(),
                    detail::hdf5_error_detail());
    }
    return {};
}

}  // namespace anisoflow::io
