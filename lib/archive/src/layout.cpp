// Creation of the archive's NeXus tree (docs/archive.md, "Layout"). Everything a run will ever
// write is created here, before H5Fstart_swmr_write: a SWMR writer may not add objects or
// attributes. The same list of objects opens the tree of a file a killed writer left behind
// (open_layout, docs/archive.md "Reopening after a crash").

#include <algorithm>
#include <cmath>
#include <ctime>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include "archive_layout.hpp"

#ifndef ANISOFLOW_VERSION
#error "ANISOFLOW_VERSION must be defined by the build (lib/archive/CMakeLists.txt)"
#endif

namespace anisoflow::archive::detail {
namespace {

constexpr std::string_view kProgramName = "anisoflow";
constexpr std::string_view kDefinition = "NXxrd";
constexpr hsize_t kSeriesChunkRows = 512;  // rows per chunk of 1-D series: ~4 KiB of float64
constexpr hsize_t kCurveChunkPoints = 1024;
constexpr double kChiLowerDeg = -180.0;  // cakes span chi in [-180, 180) deg (stream.proto)
constexpr double kChiUpperDeg = 180.0;
// The bitshuffle plugin's cd_values: major and minor version, element size, block size (0 = the
// default, the real one is in each chunk's header) and the compression (2 = LZ4).
constexpr unsigned kBitshuffleMajor = 0;
constexpr unsigned kBitshuffleMinor = 3;
constexpr unsigned kBitshuffleCompressLz4 = 2;

std::optional<hid_t> pixel_file_type(pb::PixelDtype dtype) {
    switch (dtype) {
        case pb::PIXEL_DTYPE_UINT8:
            return H5T_STD_U8LE;
        case pb::PIXEL_DTYPE_UINT16:
            return H5T_STD_U16LE;
        case pb::PIXEL_DTYPE_UINT32:
            return H5T_STD_U32LE;
        case pb::PIXEL_DTYPE_INT8:
            return H5T_STD_I8LE;
        case pb::PIXEL_DTYPE_INT16:
            return H5T_STD_I16LE;
        case pb::PIXEL_DTYPE_INT32:
            return H5T_STD_I32LE;
        case pb::PIXEL_DTYPE_FLOAT32:
            return H5T_IEEE_F32LE;
        case pb::PIXEL_DTYPE_FLOAT64:
            return H5T_IEEE_F64LE;
        default:
            return std::nullopt;
    }
}

std::vector<double> bin_centres(std::size_t n, double lower, double upper) {
    std::vector<double> centres(n);
    const double step = (upper - lower) / static_cast<double>(n);
    for (std::size_t i = 0; i < n; ++i) {
        centres[i] = lower + (static_cast<double>(i) + 0.5) * step;
    }
    return centres;
}

Hid enum_type(const std::vector<std::string_view>& names) {
    Hid type = type_handle(H5Tenum_create(H5T_STD_U8LE));
    for (std::size_t i = 0; i < names.size() && type; ++i) {
        const auto value = static_cast<std::uint8_t>(i);
        const std::string name(names[i]);
        if (H5Tenum_insert(type.get(), name.c_str(), &value) < 0) {
            return {};
        }
    }
    return type;
}

Hid string_type(std::optional<std::size_t> fixed_size) {
    Hid type = type_handle(H5Tcopy(H5T_C_S1));
    if (!type) {
        return type;
    }
    const bool ok = H5Tset_size(type.get(), fixed_size ? *fixed_size : H5T_VARIABLE) >= 0 &&
                    H5Tset_cset(type.get(), H5T_CSET_UTF8) >= 0 &&
                    (!fixed_size || H5Tset_strpad(type.get(), H5T_STR_NULLPAD) >= 0);
    return ok ? std::move(type) : Hid{};
}

/// Creates objects by absolute path, or (kOpen) opens the datasets a writer appends to and
/// skips the rest, so that one list of paths serves both; after the first failure every call is
/// a no-op, so a sequence of calls needs one check at the end (error()).
class Builder {
  public:
    enum class Mode { kCreate, kOpen };

    Builder(hid_t file, std::string file_name, Mode mode = Mode::kCreate)
        : file_(file), file_name_(std::move(file_name)), mode_(mode) {}

    [[nodiscard]] bool failed() const { return error_.has_value(); }
    [[nodiscard]] const Error& error() const { return *error_; }
    [[nodiscard]] bool creating() const { return mode_ == Mode::kCreate; }

    void group(const std::string& path, std::string_view nx_class) {
        if (failed() || !creating()) {
            return;
        }
        Hid group =
            group_handle(H5Gcreate2(file_, path.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        check(group.valid(), "cannot create group", path);
        attr_text(path, "NX_class", nx_class);
    }

    void attr_text(const std::string& object, const char* name, std::string_view value) {
        const std::string copy(value);
        const char* text = copy.c_str();
        Hid space = space_handle(H5Screate(H5S_SCALAR));
        Hid type = string_type(std::nullopt);
        write_attr(object, name, space.get(), type.get(), type.get(), &text);
    }

    void attr_texts(const std::string& object, const char* name,
                    const std::vector<std::string_view>& values) {
        std::vector<std::string> copies(values.begin(), values.end());
        std::vector<const char*> texts;
        texts.reserve(copies.size());
        for (const auto& copy : copies) {
            texts.push_back(copy.c_str());
        }
        const hsize_t dims[1] = {texts.size()};
        Hid space = space_handle(H5Screate_simple(1, dims, nullptr));
        Hid type = string_type(std::nullopt);
        write_attr(object, name, space.get(), type.get(), type.get(), texts.data());
    }

    void attr_int(const std::string& object, const char* name, std::int64_t value) {
        Hid space = space_handle(H5Screate(H5S_SCALAR));
        write_attr(object, name, space.get(), H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
    }

    /// A scalar variable-length UTF-8 string dataset.
    void text(const std::string& path, std::string_view value) {
        const std::string copy(value);
        const char* data = copy.c_str();
        Hid space = space_handle(H5Screate(H5S_SCALAR));
        Hid type = string_type(std::nullopt);
        write_dataset(path, space.get(), type.get(), type.get(), &data);
    }

    /// A scalar float64 dataset with @units ("" = dimensionless).
    void number(const std::string& path, double value, std::string_view units) {
        Hid space = space_handle(H5Screate(H5S_SCALAR));
        write_dataset(path, space.get(), H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
        attr_text(path, "units", units);
    }

    /// A 1-D float64 dataset with @units.
    void numbers(const std::string& path, const std::vector<double>& values,
                 std::string_view units) {
        const hsize_t dims[1] = {values.size()};
        Hid space = space_handle(H5Screate_simple(1, dims, nullptr));
        write_dataset(path, space.get(), H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, values.data());
        attr_text(path, "units", units);
    }

    /// A scalar fixed-length string, written now so its storage exists before SWMR.
    Hid fixed_text(const std::string& path, std::size_t size_bytes, std::string_view value) {
        std::string padded(size_bytes, '\0');
        std::copy_n(value.begin(), std::min(value.size(), size_bytes), padded.begin());
        Hid space = space_handle(H5Screate(H5S_SCALAR));
        Hid type = string_type(size_bytes);
        return write_dataset(path, space.get(), type.get(), type.get(), padded.data());
    }

    /// A [5] uint64 frame count dataset, zeros, with @columns.
    Hid frame_counts(const std::string& path) {
        const std::array<std::uint64_t, kFrameCountColumns.size()> zeros{};
        const hsize_t dims[1] = {zeros.size()};
        Hid space = space_handle(H5Screate_simple(1, dims, nullptr));
        Hid dataset =
            write_dataset(path, space.get(), H5T_STD_U64LE, H5T_NATIVE_UINT64, zeros.data());
        attr_texts(path, "columns", {kFrameCountColumns.begin(), kFrameCountColumns.end()});
        return dataset;
    }

    /// A scalar int64 dataset.
    Hid integer(const std::string& path, std::int64_t value) {
        Hid space = space_handle(H5Screate(H5S_SCALAR));
        return write_dataset(path, space.get(), H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
    }

    /// An empty dataset [0, row_dims...] growing along dim 0, `chunk_rows` rows per chunk.
    /// `filters` may add a filter pipeline to the creation property list.
    Series series(const std::string& path, hid_t file_type, std::vector<hsize_t> row_dims,
                  hsize_t chunk_rows, std::optional<std::string_view> units = std::nullopt,
                  const std::function<bool(hid_t)>& filters = {}) {
        Series series{{}, path, std::move(row_dims), 0};
        if (failed()) {
            return series;
        }
        if (!creating()) {
            open_series(series);
            return series;
        }
        std::vector<hsize_t> dims{0};
        std::vector<hsize_t> max_dims{H5S_UNLIMITED};
        std::vector<hsize_t> chunk{chunk_rows};
        dims.insert(dims.end(), series.row_dims.begin(), series.row_dims.end());
        max_dims.insert(max_dims.end(), series.row_dims.begin(), series.row_dims.end());
        chunk.insert(chunk.end(), series.row_dims.begin(), series.row_dims.end());
        const int rank = static_cast<int>(dims.size());
        Hid space = space_handle(H5Screate_simple(rank, dims.data(), max_dims.data()));
        Hid create = plist_handle(H5Pcreate(H5P_DATASET_CREATE));
        const bool ok = space && create && H5Pset_chunk(create.get(), rank, chunk.data()) >= 0 &&
                        (!filters || filters(create.get()));
        if (ok) {
            series.dataset = dataset_handle(H5Dcreate2(file_, path.c_str(), file_type, space.get(),
                                                       H5P_DEFAULT, create.get(), H5P_DEFAULT));
        }
        check(series.dataset.valid(), "cannot create dataset", path);
        if (units) {
            attr_text(path, "units", *units);
        }
        return series;
    }

    void hard_link(const std::string& target, const std::string& link) {
        if (failed() || !creating()) {
            return;
        }
        check(H5Lcreate_hard(file_, target.c_str(), file_, link.c_str(), H5P_DEFAULT,
                             H5P_DEFAULT) >= 0,
              "cannot link", link);
    }

    /// Records a failure found by checking what was created.
    void fail_with(std::string message) {
        if (!failed()) {
            error_ = Error{ErrorCode::kIo, fmt::format("{}: {}", file_name_, message)};
        }
    }

  private:
    // An existing series: its rows as stored, and a row shape that must be the run's.
    void open_series(Series& series) {
        series.dataset = open_dataset(series.path);
        if (failed()) {
            return;
        }
        Hid space = space_handle(H5Dget_space(series.dataset.get()));
        const int rank = space ? H5Sget_simple_extent_ndims(space.get()) : -1;
        std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
        if (rank < 1 || H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0) {
            check(false, "cannot read the shape of", series.path);
            return;
        }
        if (!std::equal(dims.begin() + 1, dims.end(), series.row_dims.begin(),
                        series.row_dims.end())) {
            fail_with(fmt::format("{} has rows of [{}] but the run's configuration makes them [{}]",
                                  series.path, fmt::join(dims.begin() + 1, dims.end(), ", "),
                                  fmt::join(series.row_dims, ", ")));
            return;
        }
        series.rows = dims[0];
    }

    void check(bool ok, std::string_view what, std::string_view path) {
        if (!ok && !failed()) {
            error_ = Error{ErrorCode::kIo, fmt::format("{}: {} {}: {}", file_name_, what, path,
                                                       hdf5_error_detail())};
        }
    }

    void write_attr(const std::string& object, const char* name, hid_t space, hid_t file_type,
                    hid_t memory_type, const void* data) {
        if (failed() || !creating()) {
            return;
        }
        Hid attr = attribute_handle(H5Acreate_by_name(file_, object.c_str(), name, file_type, space,
                                                      H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        check(attr && H5Awrite(attr.get(), memory_type, data) >= 0,
              fmt::format("cannot write attribute {} of", name), object);
    }

    Hid write_dataset(const std::string& path, hid_t space, hid_t file_type, hid_t memory_type,
                      const void* data) {
        if (failed()) {
            return {};
        }
        if (!creating()) {
            return open_dataset(path);
        }
        Hid dataset = dataset_handle(H5Dcreate2(file_, path.c_str(), file_type, space, H5P_DEFAULT,
                                                H5P_DEFAULT, H5P_DEFAULT));
        check(dataset &&
                  H5Dwrite(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0,
              "cannot write dataset", path);
        return dataset;
    }

    Hid open_dataset(const std::string& path) {
        Hid dataset = dataset_handle(H5Dopen2(file_, path.c_str(), H5P_DEFAULT));
        check(dataset.valid(), "cannot open dataset", path);
        return dataset;
    }

    hid_t file_;
    std::string file_name_;
    Mode mode_;
    std::optional<Error> error_;
};

void write_header(Builder& out, const pb::RunStart& start, const ArchiveOptions& options,
                  const std::string& file_name) {
    const std::string version = ANISOFLOW_VERSION;
    out.attr_text("/", "NX_class", "NXroot");
    out.attr_text("/", "default", "entry");
    out.attr_text("/", "creator", fmt::format("{} {}", kProgramName, version));
    out.attr_text("/", "file_name", file_name);
    out.attr_text("/", "HDF5_Version",
                  fmt::format("{}.{}.{}", H5_VERS_MAJOR, H5_VERS_MINOR, H5_VERS_RELEASE));

    out.group("/entry", "NXentry");
    out.attr_text("/entry", "default", "reduced");
    out.text("/entry/definition", kDefinition);
    out.text("/entry/title", start.run_id());
    out.text("/entry/entry_identifier", start.run_id());
    out.text("/entry/start_time", iso8601_utc(start.started_unix_ns()));
    out.text("/entry/program_name", kProgramName);
    out.attr_text("/entry/program_name", "version", version);

    const pb::ExperimentConfig& config = start.config();
    const pb::PoniGeometry& geometry = config.geometry();
    out.group("/entry/instrument", "NXinstrument");
    out.group("/entry/instrument/monochromator", "NXmonochromator");
    out.number("/entry/instrument/monochromator/wavelength", geometry.wavelength_m(), "m");
    const std::string detector = "/entry/instrument/detector";
    out.group(detector, "NXdetector");
    out.attr_text(detector, "geometry_conventions", "pyFAI PONI (SPEC 1)");
    out.text(detector + "/description", geometry.detector_type());
    out.number(detector + "/distance", geometry.distance_m(), "m");
    out.number(detector + "/x_pixel_size", geometry.pixel2_m(), "m");  // dim2, columns
    out.number(detector + "/y_pixel_size", geometry.pixel1_m(), "m");  // dim1, rows
    out.number(detector + "/poni1", geometry.poni1_m(), "m");
    out.number(detector + "/poni2", geometry.poni2_m(), "m");
    out.number(detector + "/rot1", geometry.rot1_rad(), "rad");
    out.number(detector + "/rot2", geometry.rot2_rad(), "rad");
    out.number(detector + "/rot3", geometry.rot3_rad(), "rad");
    out.integer(detector + "/detector_rows", geometry.detector_rows());
    out.integer(detector + "/detector_cols", geometry.detector_cols());
    out.number(detector + "/polarization_factor", config.polarization_factor(), "");

    out.group("/entry/sample", "NXsample");
    out.text("/entry/sample/name", config.composition());
    out.text("/entry/sample/chemical_formula", config.composition());
    out.number("/entry/sample/number_density", config.density_per_cubic_angstrom(), "1/angstrom^3");
    out.number("/entry/sample/poisson_ratio", config.nu(), "");
    out.number("/entry/sample/loading_axis_chi", config.loading_axis_chi_deg(), "deg");

    std::string json;
    google::protobuf::util::JsonPrintOptions json_options;
    json_options.add_whitespace = true;
    json_options.always_print_primitive_fields = true;
    json_options.preserve_proto_field_names = true;
    if (!google::protobuf::util::MessageToJsonString(config, &json, json_options).ok()) {
        json = "{}";  // cannot happen for a message of this schema; the file stays usable
    }
    out.group("/entry/process", "NXprocess");
    out.text("/entry/process/program", kProgramName);
    out.text("/entry/process/version", version);
    out.text("/entry/process/source_version", start.source_version());
    out.text("/entry/process/configuration", json);
    out.attr_text("/entry/process/configuration", "format",
                  "JSON of anisoflow.stream.v1.ExperimentConfig (proto field names)");
    out.text("/entry/process/raw_compression",
             options.raw_compression == RawCompression::kLz4     ? "lz4"
             : options.raw_compression == RawCompression::kBslz4 ? "bslz4"
                                                                 : "none");
}

/// The bitshuffle parameters every raw dataset must store: major and minor version, element
/// size, block size and compression.
std::array<unsigned, 5> bitshuffle_stored_values(std::size_t element_size_bytes) {
    return {kBitshuffleMajor, kBitshuffleMinor, static_cast<unsigned>(element_size_bytes), 0,
            kBitshuffleCompressLz4};
}

/// The stored bitshuffle parameters of a dataset creation property list.
std::vector<unsigned> bitshuffle_values(hid_t create) {
    std::array<unsigned, 16> values{};
    std::size_t count = values.size();
    unsigned flags = 0;
    if (H5Pget_filter_by_id2(create, kFilterIdBslz4, &flags, &count, values.data(), 0, nullptr,
                             nullptr) < 0) {
        return {};
    }
    return {values.begin(),
            values.begin() + static_cast<std::ptrdiff_t>(std::min(count, values.size()))};
}

/// Declares the optional bitshuffle-LZ4 (index 0) and LZ4 (index 1) filters, with `bitshuffle` as
/// the bitshuffle parameters given.
bool add_raw_filters(hid_t create, std::span<const unsigned> bitshuffle) {
    return H5Pset_filter(create, kFilterIdBslz4, H5Z_FLAG_OPTIONAL, bitshuffle.size(),
                         bitshuffle.data()) >= 0 &&
           H5Pset_filter(create, kFilterIdLz4, H5Z_FLAG_OPTIONAL, 0, nullptr) >= 0;
}

/// Bitshuffle parameters to give H5Pset_filter so that the file stores
/// bitshuffle_stored_values(). A registered bitshuffle plugin rewrites them when a dataset is
/// created (its set_local callback), and the two plugins in use disagree: the HDF Group's (Debian's
/// hdf5-filter-plugin, hdf5plugin) takes {block size, compression} and prepends the first three,
/// the bitshuffle library's own overwrites the first three of five. With no plugin registered
/// nothing is rewritten. Which applies is found by creating a probe dataset in memory.
std::vector<unsigned> bitshuffle_given_values(hid_t pixel_type, std::size_t element_size_bytes) {
    const auto stored = bitshuffle_stored_values(element_size_bytes);
    const std::vector<unsigned> hdf_group_style = {stored[3], stored[4]};
    std::vector<unsigned> full(stored.begin(), stored.end());
    Hid access = plist_handle(H5Pcreate(H5P_FILE_ACCESS));
    constexpr std::size_t kCoreIncrementBytes = std::size_t{64} * 1024;
    if (!access || H5Pset_fapl_core(access.get(), kCoreIncrementBytes, /*backing_store=*/0) < 0) {
        return full;
    }
    Hid probe = file_handle(
        H5Fcreate("anisoflow-bitshuffle-probe.h5", H5F_ACC_TRUNC, H5P_DEFAULT, access.get()));
    const std::array<hsize_t, 2> dims = {1, 64};
    Hid space = space_handle(H5Screate_simple(2, dims.data(), nullptr));
    int index = 0;
    for (const auto& candidate : {hdf_group_style, full}) {
        Hid create = plist_handle(H5Pcreate(H5P_DATASET_CREATE));
        if (!create || H5Pset_chunk(create.get(), 2, dims.data()) < 0 ||
            !add_raw_filters(create.get(), candidate)) {
            return full;
        }
        const std::string name = fmt::format("probe{}", index++);
        Hid dataset = dataset_handle(H5Dcreate2(probe.get(), name.c_str(), pixel_type, space.get(),
                                                H5P_DEFAULT, create.get(), H5P_DEFAULT));
        Hid created = dataset ? plist_handle(H5Dget_create_plist(dataset.get())) : Hid{};
        if (created && bitshuffle_values(created.get()) == full) {
            return candidate;
        }
    }
    return full;
}

void create_raw(Builder& out, Layout& layout, const pb::RunStart& start,
                const ArchiveOptions& options, hid_t pixel_type) {
    const pb::PoniGeometry& geometry = start.config().geometry();
    const std::string group = "/entry/data";
    out.group(group, "NXdata");
    out.attr_text(group, "signal", "data");
    const std::size_t element_size = dtype_size_bytes(options.raw_dtype);
    // The probe only matters for a dataset being created (an opened one has its filters).
    const std::vector<unsigned> bitshuffle = out.creating()
                                                 ? bitshuffle_given_values(pixel_type, element_size)
                                                 : std::vector<unsigned>{};
    layout.raw_data = out.series(
        group + "/data", pixel_type, {geometry.detector_rows(), geometry.detector_cols()}, 1,
        std::nullopt, [&bitshuffle](hid_t create) { return add_raw_filters(create, bitshuffle); });
    if (!out.failed() && !out.creating()) {
        Hid stored = type_handle(H5Dget_type(layout.raw_data.dataset.get()));
        if (!stored || H5Tequal(stored.get(), pixel_type) <= 0) {
            out.fail_with(fmt::format("{}/data does not hold the {} pixels this archive writes",
                                      group, pb::PixelDtype_Name(options.raw_dtype)));
        }
    }
    if (!out.failed() && out.creating()) {
        Hid created = plist_handle(H5Dget_create_plist(layout.raw_data.dataset.get()));
        const auto expected = bitshuffle_stored_values(element_size);
        if (!created || bitshuffle_values(created.get()) !=
                            std::vector<unsigned>(expected.begin(), expected.end())) {
            out.fail_with(
                fmt::format("a bitshuffle filter plugin stored unexpected parameters on "
                            "{}/data; bslz4 chunks would not decode",
                            group));
        }
    }
    out.attr_text(group + "/data", "units", "counts");
    out.attr_text(group + "/data", "interpretation", "image");
    // A flat field given as floats (computed, or normalised by the beamline) is not a frame of
    // the detector's integer type: NXdetector's own `flatfield` holds it.
    const std::string detector = "/entry/instrument/detector";
    layout.flatfield = out.series(detector + "/flatfield", H5T_IEEE_F32LE,
                                  {geometry.detector_rows(), geometry.detector_cols()}, 1);
    out.attr_text(detector + "/flatfield", "interpretation", "image");
    layout.flatfield_sequence =
        out.series(detector + "/flatfield_sequence", H5T_STD_U64LE, {}, kSeriesChunkRows);
    layout.raw_sequence = out.series(group + "/sequence", H5T_STD_U64LE, {}, kSeriesChunkRows);
    layout.raw_orientation =
        out.series(group + "/orientation", layout.orientation_type.get(), {}, kSeriesChunkRows);
    layout.raw_kind = out.series(group + "/kind", layout.kind_type.get(), {}, kSeriesChunkRows);
    layout.raw_encoding =
        out.series(group + "/encoding", layout.encoding_type.get(), {}, kSeriesChunkRows);
    layout.raw_acquired =
        out.series(group + "/acquired_unix_ns", H5T_STD_I64LE, {}, kSeriesChunkRows, "ns");
    layout.raw_sent =
        out.series(group + "/sent_unix_ns", H5T_STD_I64LE, {}, kSeriesChunkRows, "ns");
    layout.raw_exposure =
        out.series(group + "/exposure_s", H5T_IEEE_F64LE, {}, kSeriesChunkRows, "s");
    out.hard_link(group + "/data", "/entry/instrument/detector/data");
}

void create_reduced(Builder& out, Layout& layout, const pb::ExperimentConfig& config) {
    const std::string group = "/entry/reduced";
    out.group(group, "NXdata");
    out.attr_text(group, "signal", "intensity");
    out.attr_texts(group, "axes", {".", "chi", "q"});
    out.attr_int(group, "chi_indices", 1);
    out.attr_int(group, "q_indices", 2);
    out.numbers(group + "/q",
                bin_centres(config.n_q(), config.q_min_inv_angstrom(), config.q_max_inv_angstrom()),
                "1/angstrom");
    out.numbers(group + "/chi", bin_centres(config.n_chi(), kChiLowerDeg, kChiUpperDeg), "deg");
    const std::vector<hsize_t> cake{config.n_chi(), config.n_q()};
    layout.cake_intensity = out.series(group + "/intensity", H5T_IEEE_F64LE, cake, 1, "arb");
    layout.cake_variance = out.series(group + "/variance", H5T_IEEE_F64LE, cake, 1, "arb^2");
    layout.cake_count = out.series(group + "/count", H5T_IEEE_F64LE, cake, 1, "");
    layout.cake_sequence = out.series(group + "/sequence", H5T_STD_U64LE, {}, kSeriesChunkRows);
    layout.cake_orientation =
        out.series(group + "/orientation", layout.orientation_type.get(), {}, kSeriesChunkRows);
    layout.cake_kind = out.series(group + "/kind", layout.kind_type.get(), {}, kSeriesChunkRows);
    layout.cake_frames =
        out.series(group + "/frames_accumulated", H5T_STD_U64LE, {}, kSeriesChunkRows);
}

void create_results(Builder& out, Layout& layout) {
    const std::string group = "/entry/results";
    out.group(group, "NXcollection");
    for (const ResultField& field : result_double_fields()) {
        layout.result_doubles.push_back(out.series(group + "/" + std::string(field.name),
                                                   H5T_IEEE_F64LE, {}, kSeriesChunkRows,
                                                   field.units));
    }
    layout.result_frames_p =
        out.series(group + "/frames_p", H5T_STD_U64LE, {}, kSeriesChunkRows, "");
    layout.result_frames_n =
        out.series(group + "/frames_n", H5T_STD_U64LE, {}, kSeriesChunkRows, "");
    layout.result_s2_dof = out.series(group + "/s2_dof", H5T_STD_U64LE, {}, kSeriesChunkRows, "");
    layout.result_mechanism =
        out.series(group + "/mechanism", layout.mechanism_type.get(), {}, kSeriesChunkRows);
    layout.result_is_final = out.series(group + "/is_final", H5T_STD_U8LE, {}, kSeriesChunkRows);
    layout.result_frames_received = out.series(group + "/frames_received", H5T_STD_U64LE,
                                               {kFrameCountColumns.size()}, kSeriesChunkRows);
    out.attr_texts(group + "/frames_received", "columns",
                   {kFrameCountColumns.begin(), kFrameCountColumns.end()});
    layout.result_written =
        out.series(group + "/written_unix_ns", H5T_STD_I64LE, {}, kSeriesChunkRows, "ns");

    for (std::size_t i = 0; i < kCurveKinds; ++i) {
        const CurveName& name = kCurveNames[i];
        const std::string curve = group + "/" + std::string(name.group);
        out.group(curve, "NXdata");
        out.attr_text(curve, "signal", "value");
        out.attr_text(curve, "axes", name.x_name);
        CurveDatasets& datasets = layout.curves[i];
        datasets.x = out.series(curve + "/" + std::string(name.x_name), H5T_IEEE_F64LE, {},
                                kCurveChunkPoints, name.x_units);
        datasets.value =
            out.series(curve + "/value", H5T_IEEE_F64LE, {}, kCurveChunkPoints, name.value_units);
        datasets.variance =
            out.series(curve + "/variance", H5T_IEEE_F64LE, {}, kCurveChunkPoints, "");
        datasets.result_row = out.integer(curve + "/result_row", -1);
    }
}

// Run control's log (docs/run-control.md): empty unless the run was opened by run control.
void create_run_log(Builder& out, Layout& layout) {
    const std::string group = "/entry/run_log";
    out.group(group, "NXcollection");
    layout.log_changed =
        out.series(group + "/changed_unix_ns", H5T_STD_I64LE, {}, kSeriesChunkRows, "ns");
    layout.log_type = out.series(group + "/change", layout.change_type.get(), {}, kSeriesChunkRows);
    layout.log_kind = out.series(group + "/kind", layout.kind_type.get(), {}, kSeriesChunkRows);
    layout.log_orientation =
        out.series(group + "/orientation", layout.orientation_type.get(), {}, kSeriesChunkRows);
    layout.log_next_sequence =
        out.series(group + "/next_sequence", H5T_STD_U64LE, {}, kSeriesChunkRows, "");
    layout.log_note = out.series(group + "/note", layout.note_type.get(), {}, kSeriesChunkRows);
}

Result<void> check_start(const std::string& file_name, const pb::RunStart& start,
                         const ArchiveOptions& options) {
    const pb::ExperimentConfig& config = start.config();
    if (start.run_id().empty()) {
        return fail(ErrorCode::kInvalidArgument, "{}: RunStart.run_id is empty", file_name);
    }
    if (config.n_q() == 0 || config.n_chi() == 0) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: RunStart.config has n_q = {} and n_chi = {}; cakes need at least 1 bin",
                    file_name, config.n_q(), config.n_chi());
    }
    if (!options.store_raw) {
        return {};
    }
    const pb::PoniGeometry& geometry = config.geometry();
    if (geometry.detector_rows() == 0 || geometry.detector_cols() == 0) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: RunStart.config.geometry is {} x {} pixels; raw frames need the detector "
                    "shape",
                    file_name, geometry.detector_rows(), geometry.detector_cols());
    }
    if (!pixel_file_type(options.raw_dtype)) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: ArchiveOptions.raw_dtype {} is not a pixel type", file_name,
                    pb::PixelDtype_Name(options.raw_dtype));
    }
    return {};
}

// The file access of every run file: libver latest, which SWMR needs, and a metadata cache of
// at most kMetadataCacheMaxBytes. HDF5's default lets the cache grow to 32 MB, and it keeps the
// chunk index of every dataset as the run grows (~25 bytes per appended chunk of three datasets,
// memory that grows with the run; docs/performance.md, "Soak"). Appends touch only the end of
// each index, so a small cache costs no extra reads.
Hid file_access() {
    Hid access = plist_handle(H5Pcreate(H5P_FILE_ACCESS));
    if (!access || H5Pset_libver_bounds(access.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0) {
        return {};
    }
    H5AC_cache_config_t cache{};
    cache.version = H5AC__CURR_CACHE_CONFIG_VERSION;
    if (H5Pget_mdc_config(access.get(), &cache) < 0) {
        return {};
    }
    cache.set_initial_size = true;
    cache.initial_size = kMetadataCacheMaxBytes / 2;
    cache.min_size = kMetadataCacheMaxBytes / 4;
    cache.max_size = kMetadataCacheMaxBytes;
    if (H5Pset_mdc_config(access.get(), &cache) < 0) {
        return {};
    }
    return access;
}

// The enum and string types rows are written with (also the file types of new datasets).
Result<void> create_types(Layout& layout) {
    layout.orientation_type = enum_type({"unspecified", "P", "N"});
    layout.kind_type = enum_type({"unspecified", "data", "dark", "flat", "background"});
    layout.encoding_type = enum_type({"none", "lz4", "bslz4"});
    layout.mechanism_type =
        enum_type({"unspecified", "bond-stretching", "bond-rotation", "isotropic", "undetermined"});
    layout.change_type = enum_type({"unspecified", "run_started", "state_set", "acquisition_opened",
                                    "acquisition_closed", "run_ended"});
    layout.note_type = string_type(kNoteBytes);
    if (!layout.orientation_type || !layout.kind_type || !layout.encoding_type ||
        !layout.mechanism_type || !layout.change_type || !layout.note_type) {
        return fail(ErrorCode::kIo, "{}: cannot create enum types: {}", layout.file_name,
                    hdf5_error_detail());
    }
    return {};
}

// Every object of a run file, created or (Builder::Mode::kOpen) opened: the one list of paths.
void build_tree(Builder& out, Layout& layout, const pb::RunStart& start,
                const ArchiveOptions& options, const std::filesystem::path& path) {
    if (out.creating()) {
        write_header(out, start, options, path.filename().string());
    }
    layout.run_state = out.fixed_text("/entry/run_state", kRunStateBytes, kRunStateRunning);
    layout.end_time = out.fixed_text("/entry/end_time", kTimeBytes, "");
    layout.end_detail = out.fixed_text("/entry/run_end_detail", kDetailBytes, "");
    layout.frames_sent = out.frame_counts("/entry/frames_sent");
    layout.frames_archived = out.frame_counts("/entry/frames_archived");
    if (options.store_raw) {
        create_raw(out, layout, start, options, *pixel_file_type(options.raw_dtype));
    }
    create_reduced(out, layout, start.config());
    create_results(out, layout);
    create_run_log(out, layout);
}

// A scalar string dataset (fixed or variable length) as text up to its first NUL.
Result<std::string> read_text(const Layout& layout, const std::string& path) {
    Hid dataset = dataset_handle(H5Dopen2(layout.file.get(), path.c_str(), H5P_DEFAULT));
    Hid type = dataset ? type_handle(H5Dget_type(dataset.get())) : Hid{};
    if (!type) {
        return fail(ErrorCode::kNotFound, "{}: no dataset {}", layout.file_name, path);
    }
    if (H5Tis_variable_str(type.get()) > 0) {
        char* data = nullptr;
        if (H5Dread(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &data) < 0) {
            return fail(ErrorCode::kIo, "{}: cannot read {}: {}", layout.file_name, path,
                        hdf5_error_detail());
        }
        std::string text = data == nullptr ? "" : data;
        H5free_memory(data);
        return text;
    }
    std::string buffer(H5Tget_size(type.get()), '\0');
    if (H5Dread(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()) < 0) {
        return fail(ErrorCode::kIo, "{}: cannot read {}: {}", layout.file_name, path,
                    hdf5_error_detail());
    }
    return std::string(buffer.c_str());
}

}  // namespace

std::span<const ResultField> result_double_fields() {
    using R = pb::AnalysisResult;
    static const std::array<ResultField, 14> fields = {{
        {"alpha", "", [](const R& r) { return r.alpha(); }},
        {"alpha_stderr", "", [](const R& r) { return r.alpha_stderr(); }},
        {"alpha_reduced_chi2", "", [](const R& r) { return r.alpha_reduced_chi2(); }},
        {"alpha_full_range", "", [](const R& r) { return r.alpha_full_range(); }},
        {"alpha_full_range_stderr", "", [](const R& r) { return r.alpha_full_range_stderr(); }},
        {"alpha_full_range_reduced_chi2", "",
         [](const R& r) { return r.alpha_full_range_reduced_chi2(); }},
        {"eps_aff", "", [](const R& r) { return r.eps_aff(); }},
        {"eps_aff_stderr", "", [](const R& r) { return r.eps_aff_stderr(); }},
        {"nu", "", [](const R& r) { return r.nu(); }},
        {"r_c_angstrom", "angstrom",
         [](const R& r) {
             return r.has_r_c_angstrom() ? r.r_c_angstrom()
                                         : std::numeric_limits<double>::quiet_NaN();
         }},
        {"corr_stretching", "", [](const R& r) { return r.corr_stretching(); }},
        {"corr_rotation", "", [](const R& r) { return r.corr_rotation(); }},
        {"first_peak_shift_angstrom", "angstrom",
         [](const R& r) { return r.first_peak_shift_angstrom(); }},
        {"s2_chi2", "", [](const R& r) { return r.s2_chi2(); }},
    }};
    return fields;
}

std::size_t dtype_size_bytes(pb::PixelDtype dtype) {
    switch (dtype) {
        case pb::PIXEL_DTYPE_UINT8:
        case pb::PIXEL_DTYPE_INT8:
            return 1;
        case pb::PIXEL_DTYPE_UINT16:
        case pb::PIXEL_DTYPE_INT16:
            return 2;
        case pb::PIXEL_DTYPE_UINT32:
        case pb::PIXEL_DTYPE_INT32:
        case pb::PIXEL_DTYPE_FLOAT32:
            return 4;
        case pb::PIXEL_DTYPE_FLOAT64:
            return 8;
        default:
            return 0;
    }
}

Result<void> write_fixed_text(const Layout& layout, hid_t dataset, std::string_view path,
                              std::string_view value) {
    Hid type = type_handle(H5Dget_type(dataset));
    const std::size_t size = type ? H5Tget_size(type.get()) : 0;
    std::string padded(size, '\0');
    std::copy_n(value.begin(), std::min(value.size(), size), padded.begin());
    if (!type || H5Dwrite(dataset, type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, padded.data()) < 0 ||
        H5Dflush(dataset) < 0) {
        return fail(ErrorCode::kIo, "{}: cannot write {}: {}", layout.file_name, path,
                    hdf5_error_detail());
    }
    return {};
}

Result<Layout> create_layout(const std::filesystem::path& path, const pb::RunStart& start,
                             const ArchiveOptions& options) {
    silence_hdf5_errors();
    Layout layout;
    layout.file_name = path.string();
    if (auto ok = check_start(layout.file_name, start, options); !ok) {
        return tl::unexpected(ok.error());
    }
    Hid access = file_access();
    if (!access) {
        return fail(ErrorCode::kIo, "{}: cannot set up file access: {}", layout.file_name,
                    hdf5_error_detail());
    }
    std::error_code ec;
    if (!options.overwrite && std::filesystem::exists(path, ec)) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: file exists; an archive never replaces a run file unless asked to",
                    layout.file_name);
    }
    layout.file =
        file_handle(H5Fcreate(layout.file_name.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access.get()));
    if (!layout.file) {
        const std::filesystem::path parent =
            path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
        const std::string why = !std::filesystem::is_directory(parent, ec)
                                    ? fmt::format("directory {} does not exist", parent.string())
                                    : hdf5_error_detail();
        return fail(ErrorCode::kIo, "{}: cannot create archive file: {}", layout.file_name, why);
    }

    if (auto ok = create_types(layout); !ok) {
        return tl::unexpected(ok.error());
    }

    Builder out(layout.file.get(), layout.file_name);
    build_tree(out, layout, start, options, path);
    if (out.failed()) {
        return tl::unexpected(out.error());
    }
    if (H5Fstart_swmr_write(layout.file.get()) < 0) {
        return fail(ErrorCode::kIo, "{}: cannot switch to SWMR write mode: {}", layout.file_name,
                    hdf5_error_detail());
    }
    return layout;
}

Result<OpenedLayout> open_layout(const std::filesystem::path& path, std::string_view run_id,
                                 const ArchiveOptions& options) {
    silence_hdf5_errors();
    OpenedLayout opened;
    Layout& layout = opened.layout;
    layout.file_name = path.string();
    Hid access = file_access();
    hbool_t clear_status_flags = 1;
    // A writer killed in SWMR mode leaves the superblock marked open for writing; h5clear's
    // property clears it (HDF5 1.10: a registered file access property).
    if (!access || H5Pset(access.get(), "clear_status_flags", &clear_status_flags) < 0) {
        return fail(ErrorCode::kIo, "{}: cannot set up file access: {}", layout.file_name,
                    hdf5_error_detail());
    }
    layout.file = file_handle(H5Fopen(layout.file_name.c_str(), H5F_ACC_RDWR, access.get()));
    if (!layout.file) {
        return fail(ErrorCode::kIo, "{}: cannot open the run file to go on writing: {}",
                    layout.file_name, hdf5_error_detail());
    }
    // The superblock's end of allocation is as the writer last flushed it, short of what it had
    // written since: taken up to the end of the file (h5clear --increment=0), or the newest
    // objects read as beyond the file.
    if (H5Fincrement_filesize(layout.file.get(), 0) < 0) {
        return fail(ErrorCode::kIo, "{}: cannot extend the end of allocation to the file's end: {}",
                    layout.file_name, hdf5_error_detail());
    }
    auto stored_id = read_text(layout, "/entry/entry_identifier");
    if (!stored_id) {
        return tl::unexpected(stored_id.error().with_context("not an anisoflow run file"));
    }
    if (*stored_id != run_id) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: /entry/entry_identifier is run '{}', not '{}'", layout.file_name,
                    *stored_id, run_id);
    }
    auto state = read_text(layout, "/entry/run_state");
    if (!state) {
        return tl::unexpected(state.error());
    }
    // "interrupted": a writer that stopped mid-run closed it to be gone on with (interrupt()).
    if (*state != kRunStateRunning && *state != kRunStateInterrupted) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: run_state is '{}': a finished run file is never reopened",
                    layout.file_name, *state);
    }
    auto configuration = read_text(layout, "/entry/process/configuration");
    if (!configuration) {
        return tl::unexpected(configuration.error());
    }
    google::protobuf::util::JsonParseOptions json_options;
    json_options.ignore_unknown_fields = true;  // written by a newer version
    if (!google::protobuf::util::JsonStringToMessage(*configuration, opened.start.mutable_config(),
                                                     json_options)
             .ok()) {
        return fail(ErrorCode::kCorrupt,
                    "{}: /entry/process/configuration is not the JSON of an "
                    "ExperimentConfig",
                    layout.file_name);
    }
    opened.start.set_run_id(*stored_id);
    if (auto ok = check_start(layout.file_name, opened.start, options); !ok) {
        return tl::unexpected(ok.error());
    }
    const bool has_raw = H5Lexists(layout.file.get(), "/entry/data", H5P_DEFAULT) > 0;
    if (has_raw != options.store_raw) {
        return fail(ErrorCode::kInvalidArgument, "{}: the file {} raw frames but the archive {}",
                    layout.file_name, has_raw ? "holds" : "holds no",
                    options.store_raw ? "stores them" : "does not store them");
    }
    if (auto ok = create_types(layout); !ok) {
        return tl::unexpected(ok.error());
    }
    Builder out(layout.file.get(), layout.file_name, Builder::Mode::kOpen);
    build_tree(out, layout, opened.start, options, path);
    if (out.failed()) {
        return tl::unexpected(out.error());
    }
    return opened;
}

Result<void> start_swmr_write(const Layout& layout) {
    if (H5Fstart_swmr_write(layout.file.get()) < 0) {
        return fail(ErrorCode::kIo, "{}: cannot switch to SWMR write mode: {}", layout.file_name,
                    hdf5_error_detail());
    }
    return {};
}

}  // namespace anisoflow::archive::detail
