// The NeXus cake file of `anisoflow integrate` (layout in docs/io.md). Everything is addressed by
// absolute path from the file handle, so error messages name the object that failed.

#include "anisoflow/io/cake_file.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "hdf5_util.hpp"
#include "nexus_writer.hpp"

namespace anisoflow::io {

using detail::hdf5_error_detail;
using detail::Hid;

namespace {

using detail::NexusWriter;

constexpr std::string_view kProgramName = "anisoflow";
constexpr unsigned kPerFrameGzipLevel = 1;  // fast; per-frame cakes are the bulk of the file

Result<void> check_cake(const reduce::Cake& cake, const reduce::CakeAxes& axes) {
    if (cake.axes.n_q != axes.n_q || cake.axes.n_chi != axes.n_chi) {
        return fail(ErrorCode::kInvalidArgument,
                    "cake has {} chi x {} q bins but the file was created for {} x {}",
                    cake.axes.n_chi, cake.axes.n_q, axes.n_chi, axes.n_q);
    }
    const std::pair<const std::vector<double>*, std::size_t> expected[] = {
        {&cake.q_inv_angstrom, axes.n_q},     {&cake.chi_deg, axes.n_chi},
        {&cake.intensity, axes.cell_count()}, {&cake.variance, axes.cell_count()},
        {&cake.count, axes.cell_count()},     {&cake.intensity_1d, axes.n_q},
        {&cake.variance_1d, axes.n_q},        {&cake.count_1d, axes.n_q}};
    constexpr const char* kNames[] = {"q_inv_angstrom", "chi_deg",      "intensity",   "variance",
                                      "count",          "intensity_1d", "variance_1d", "count_1d"};
    for (std::size_t i = 0; i < std::size(expected); ++i) {
        if (expected[i].first->size() != expected[i].second) {
            return fail(ErrorCode::kInvalidArgument, "cake {} has {} values, expected {}",
                        kNames[i], expected[i].first->size(), expected[i].second);
        }
    }
    return {};
}

std::vector<double> axis_centres(std::size_t n, double first, double step) {
    std::vector<double> centres(n);
    for (std::size_t i = 0; i < n; ++i) {
        centres[i] = first + (static_cast<double>(i) + 0.5) * step;
    }
    return centres;
}

}  // namespace

struct CakeFileWriter::State {
    std::filesystem::path path;
    reduce::CakeAxes axes;
    bool per_frame = false;
    bool finished = false;
    std::size_t frames_written = 0;
    Hid file;  // declared first: closed after the datasets below
    Hid frames_intensity;
    Hid frames_variance;
    Hid frames_count;
    Hid frames_intensity_1d;
};

CakeFileWriter::CakeFileWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}
CakeFileWriter::CakeFileWriter(CakeFileWriter&&) noexcept = default;
CakeFileWriter& CakeFileWriter::operator=(CakeFileWriter&&) noexcept = default;
CakeFileWriter::~CakeFileWriter() = default;

std::size_t CakeFileWriter::frames_written() const { return state_ ? state_->frames_written : 0; }

Result<CakeFileWriter> CakeFileWriter::create(const std::filesystem::path& path,
                                              const reduce::CakeAxes& axes,
                                              const CakeFileInfo& info, bool per_frame) {
    detail::silence_hdf5_errors();
    if (axes.n_q == 0 || axes.n_chi == 0) {
        return fail(ErrorCode::kInvalidArgument, "{}: cake axes need n_q > 0 and n_chi > 0",
                    path.string());
    }
    auto state = std::make_unique<State>();
    state->path = path;
    state->axes = axes;
    state->per_frame = per_frame;
    state->file =
        detail::file_handle(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    if (!state->file) {
        return fail(ErrorCode::kIo, "{}: cannot create HDF5 file: {}", path.string(),
                    hdf5_error_detail());
    }

    NexusWriter out(state->file.get());
    const std::string creator = fmt::format("{} {}", kProgramName, info.program_version);
    out.string_attr("/", "NX_class", "NXroot");
    out.string_attr("/", "default", "entry");
    out.string_attr("/", "creator", creator);
    out.group("/entry", "NXentry");
    out.string_attr("/entry", "default", "cake");
    out.text("/entry/program_name", kProgramName);
    out.string_attr("/entry/program_name", "version", info.program_version);

    out.group("/entry/process", "NXprocess");
    out.text("/entry/process/program", kProgramName);
    out.text("/entry/process/version", info.program_version);
    out.text("/entry/process/poni", info.poni_text);
    out.text("/entry/process/settings", info.settings_json);
    out.texts("/entry/process/sources", info.sources);

    if (per_frame) {
        const std::vector<hsize_t> cake_dims{axes.n_chi, axes.n_q};
        const std::vector<hsize_t> iq_dims{axes.n_q};
        out.group("/entry/frames", "NXdata");
        out.string_attr("/entry/frames", "signal", "intensity");
        out.strings_attr("/entry/frames", "axes", {".", "chi", "q"});
        out.int_attr("/entry/frames", "chi_indices", 1);
        out.int_attr("/entry/frames", "q_indices", 2);
        out.doubles("/entry/frames/q", iq_dims,
                    axis_centres(axes.n_q, axes.q_min_inv_angstrom, axes.q_step()));
        out.string_attr("/entry/frames/q", "units", "1/angstrom");
        out.doubles("/entry/frames/chi", {axes.n_chi},
                    axis_centres(axes.n_chi, -180.0, axes.chi_step_deg()));
        out.string_attr("/entry/frames/chi", "units", "deg");
        state->frames_intensity =
            out.extendible("/entry/frames/intensity", cake_dims, kPerFrameGzipLevel);
        state->frames_variance =
            out.extendible("/entry/frames/variance", cake_dims, kPerFrameGzipLevel);
        state->frames_count = out.extendible("/entry/frames/count", cake_dims, kPerFrameGzipLevel);
        state->frames_intensity_1d =
            out.extendible("/entry/frames/intensity_1d", iq_dims, kPerFrameGzipLevel);
    }
    if (auto status = out.status(path); !status) {
        return tl::unexpected(status.error());
    }
    return CakeFileWriter(std::move(state));
}

Result<void> CakeFileWriter::append_frame(const reduce::Cake& cake) {
    if (!state_ || state_->finished) {
        return fail(ErrorCode::kInvalidArgument, "cake file already finished");
    }
    const std::string file = state_->path.string();
    if (!state_->per_frame) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: append_frame() on a cake file created without per-frame output", file);
    }
    if (auto valid = check_cake(cake, state_->axes); !valid) {
        return tl::unexpected(valid.error().with_context(file));
    }
    const std::vector<hsize_t> cake_dims{state_->axes.n_chi, state_->axes.n_q};
    const std::vector<hsize_t> iq_dims{state_->axes.n_q};
    const std::size_t index = state_->frames_written;
    NexusWriter out(state_->file.get());
    out.append(state_->frames_intensity.get(), "/entry/frames/intensity", index, cake_dims,
               cake.intensity);
    out.append(state_->frames_variance.get(), "/entry/frames/variance", index, cake_dims,
               cake.variance);
    out.append(state_->frames_count.get(), "/entry/frames/count", index, cake_dims, cake.count);
    out.append(state_->frames_intensity_1d.get(), "/entry/frames/intensity_1d", index, iq_dims,
               cake.intensity_1d);
    if (auto status = out.status(state_->path); !status) {
        return status;
    }
    ++state_->frames_written;
    return {};
}

Result<void> CakeFileWriter::finish(const reduce::Cake& mean) {
    if (!state_ || state_->finished) {
        return fail(ErrorCode::kInvalidArgument, "cake file already finished");
    }
    state_->finished = true;
    if (auto valid = check_cake(mean, state_->axes); !valid) {
        return tl::unexpected(valid.error().with_context(state_->path.string()));
    }
    const reduce::CakeAxes& axes = state_->axes;
    NexusWriter out(state_->file.get());
    out.group("/entry/cake", "NXdata");
    out.string_attr("/entry/cake", "signal", "intensity");
    out.strings_attr("/entry/cake", "axes", {"chi", "q"});
    out.int_attr("/entry/cake", "chi_indices", 0);
    out.int_attr("/entry/cake", "q_indices", 1);
    out.double_attr("/entry/cake", "q_min_inv_angstrom", axes.q_min_inv_angstrom);
    out.double_attr("/entry/cake", "q_max_inv_angstrom", axes.q_max_inv_angstrom);
    const std::vector<hsize_t> cake_dims{axes.n_chi, axes.n_q};
    out.doubles("/entry/cake/intensity", cake_dims, mean.intensity);
    out.doubles("/entry/cake/variance", cake_dims, mean.variance);
    out.doubles("/entry/cake/count", cake_dims, mean.count);
    out.doubles("/entry/cake/q", {axes.n_q}, mean.q_inv_angstrom);
    out.string_attr("/entry/cake/q", "units", "1/angstrom");
    out.doubles("/entry/cake/chi", {axes.n_chi}, mean.chi_deg);
    out.string_attr("/entry/cake/chi", "units", "deg");

    out.group("/entry/i_q", "NXdata");
    out.string_attr("/entry/i_q", "signal", "intensity");
    out.string_attr("/entry/i_q", "axes", "q");
    out.int_attr("/entry/i_q", "q_indices", 0);
    out.doubles("/entry/i_q/q", {axes.n_q}, mean.q_inv_angstrom);
    out.string_attr("/entry/i_q/q", "units", "1/angstrom");
    out.doubles("/entry/i_q/intensity", {axes.n_q}, mean.intensity_1d);
    out.doubles("/entry/i_q/variance", {axes.n_q}, mean.variance_1d);
    out.doubles("/entry/i_q/count", {axes.n_q}, mean.count_1d);

    out.integer("/entry/process/frame_count", static_cast<std::int64_t>(mean.frame_count));
    if (auto status = out.status(state_->path); !status) {
        return status;
    }

    state_->frames_intensity.close();
    state_->frames_variance.close();
    state_->frames_count.close();
    state_->frames_intensity_1d.close();
    if (!state_->file.close()) {  // the final flush: a full disk shows up here
        return fail(ErrorCode::kIo, "{}: cannot close (flush) the file: {}", state_->path.string(),
                    hdf5_error_detail());
    }
    return {};
}

namespace {

struct Array {
    std::vector<double> values;
    std::vector<hsize_t> dims;
};

Result<Array> read_array(hid_t file, const std::string& path) {
    auto dataset = detail::open_dataset(file, path);
    if (!dataset) {
        return tl::unexpected(dataset.error());
    }
    Array array;
    array.dims = detail::dataset_dims(dataset->get());
    std::size_t n = 1;
    for (const hsize_t d : array.dims) {
        n *= d;
    }
    array.values.resize(n);
    if (n > 0 && H5Dread(dataset->get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                         array.values.data()) < 0) {
        return fail(ErrorCode::kCorrupt, "cannot read {} as numbers: {}", path,
                    hdf5_error_detail());
    }
    return array;
}

std::optional<double> read_double_attr(hid_t file, const char* object, const char* name) {
    if (H5Aexists_by_name(file, object, name, H5P_DEFAULT) <= 0) {
        return std::nullopt;
    }
    Hid attribute =
        detail::attribute_handle(H5Aopen_by_name(file, object, name, H5P_DEFAULT, H5P_DEFAULT));
    double value = 0.0;
    if (!attribute || H5Aread(attribute.get(), H5T_NATIVE_DOUBLE, &value) < 0) {
        return std::nullopt;
    }
    return value;
}

Result<reduce::Cake> read_cake(hid_t file) {
    reduce::Cake cake;
    const std::pair<const char*, std::vector<double>*> arrays[] = {
        {"/entry/cake/intensity", &cake.intensity}, {"/entry/cake/variance", &cake.variance},
        {"/entry/cake/count", &cake.count},         {"/entry/cake/q", &cake.q_inv_angstrom},
        {"/entry/cake/chi", &cake.chi_deg},         {"/entry/i_q/intensity", &cake.intensity_1d},
        {"/entry/i_q/variance", &cake.variance_1d}, {"/entry/i_q/count", &cake.count_1d}};
    std::vector<hsize_t> cake_dims;
    for (const auto& [path, target] : arrays) {
        auto array = read_array(file, path);
        if (!array) {
            return tl::unexpected(array.error());
        }
        if (target == &cake.intensity) {
            if (array->dims.size() != 2) {
                return fail(ErrorCode::kCorrupt, "{} has shape {}; expected [n_chi, n_q]", path,
                            detail::format_dims(array->dims));
            }
            cake_dims = array->dims;
        }
        *target = std::move(array->values);
    }
    cake.axes.n_chi = cake_dims[0];
    cake.axes.n_q = cake_dims[1];
    if (auto valid = check_cake(cake, cake.axes); !valid) {
        return fail(ErrorCode::kCorrupt, "inconsistent cake: {}", valid.error().message);
    }

    const auto q_min = read_double_attr(file, "/entry/cake", "q_min_inv_angstrom");
    const auto q_max = read_double_attr(file, "/entry/cake", "q_max_inv_angstrom");
    if (q_min && q_max) {
        cake.axes.q_min_inv_angstrom = *q_min;
        cake.axes.q_max_inv_angstrom = *q_max;
    } else if (cake.axes.n_q >= 2) {  // files from elsewhere: uniform bins around the centres
        const double step = cake.q_inv_angstrom[1] - cake.q_inv_angstrom[0];
        cake.axes.q_min_inv_angstrom = cake.q_inv_angstrom[0] - 0.5 * step;
        cake.axes.q_max_inv_angstrom =
            cake.axes.q_min_inv_angstrom + step * static_cast<double>(cake.axes.n_q);
    }
    if (detail::dataset_exists(file, "/entry/process/frame_count")) {
        auto frame_count = read_array(file, "/entry/process/frame_count");
        if (!frame_count) {
            return tl::unexpected(frame_count.error());
        }
        if (frame_count->values.size() == 1 && frame_count->values[0] >= 0.0) {
            cake.frame_count = static_cast<std::size_t>(frame_count->values[0]);
        }
    }
    return cake;
}

}  // namespace

Result<reduce::Cake> read_cake_file(const std::filesystem::path& path) {
    auto file = detail::open_hdf5_file(path);
    if (!file) {
        return tl::unexpected(file.error());
    }
    auto cake = read_cake(file->get());
    if (!cake) {
        return tl::unexpected(cake.error().with_context(path.string()));
    }
    return cake;
}

}  // namespace anisoflow::io
