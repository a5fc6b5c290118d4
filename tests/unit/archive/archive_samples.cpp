#include "archive_samples.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <system_error>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;  // NOLINT(readability-identifier-naming): POSIX name

namespace anisoflow::archive::sample {
namespace {

constexpr int kReaderTimeoutMs = 30'000;  // a SWMR reader answers in well under a second

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

std::filesystem::path reader_script() { return ANISOFLOW_H5PY_READER; }

int spawn(const std::vector<std::string>& args, int stdin_fd, int stdout_fd,
          const std::filesystem::path& stderr_path) {
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (const auto& arg : args) {
        argv.push_back(const_cast<char*>(arg.c_str()));  // posix_spawn's historical signature
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (stdin_fd >= 0) {
        posix_spawn_file_actions_adddup2(&actions, stdin_fd, STDIN_FILENO);
    }
    if (stdout_fd >= 0) {
        posix_spawn_file_actions_adddup2(&actions, stdout_fd, STDOUT_FILENO);
    }
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    const int status = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    return status == 0 ? pid : -1;
}

int wait_for(int pid) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
        return -1;
    }
    return WEXITSTATUS(status);
}

}  // namespace

pb::RunStart run_start() {
    pb::RunStart start;
    start.set_run_id(kRunId);
    start.set_started_unix_ns(1715941862123456789);
    start.set_source_version("0.1.0");
    pb::ExperimentConfig& c = *start.mutable_config();
    pb::PoniGeometry& g = *c.mutable_geometry();
    g.set_distance_m(0.912);
    g.set_poni1_m(0.0016);
    g.set_poni2_m(0.0024);
    g.set_rot1_rad(0.001);
    g.set_rot2_rad(-0.002);
    g.set_wavelength_m(1.2398e-11);
    g.set_pixel1_m(200e-6);
    g.set_pixel2_m(200e-6);
    g.set_detector_rows(kRows);
    g.set_detector_cols(kCols);
    g.set_detector_type("Detector");
    c.set_composition("Zr52.5Cu17.9Ni14.6Al10Ti5");
    c.set_density_per_cubic_angstrom(0.0623);
    c.set_nu(0.36);
    c.set_loading_axis_chi_deg(90.0);
    c.set_mode(pb::EXTRACTION_MODE_PN);
    c.set_q_min_inv_angstrom(0.5);
    c.set_q_max_inv_angstrom(24.5);
    c.set_n_q(kNQ);
    c.set_n_chi(kNChi);
    c.set_r_max_angstrom(25.0);
    c.set_n_r(50);
    c.set_normalisation(pb::NORMALISATION_HIGH_Q);
    c.set_polarization_factor(0.99);
    c.mutable_frames_expected()->set_data_p(2);
    c.mutable_frames_expected()->set_data_n(2);
    c.mutable_frames_expected()->set_dark(1);
    return start;
}

std::vector<std::uint16_t> pixels(std::uint64_t seed) {
    std::vector<std::uint16_t> out(std::size_t{kRows} * kCols);
    std::uint64_t state = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (std::size_t row = 0; row < kRows; ++row) {
        for (std::size_t col = 0; col < kCols; ++col) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            const double radius =
                std::hypot(static_cast<double>(row) - 7.5, static_cast<double>(col) - 11.5);
            // Rings in steps of 100 counts, noise on one pixel in eight: LZ4 finds repeats.
            const double ring = 100.0 * std::round(30.0 * (1.0 + std::cos(radius * 0.4)));
            const double noise = state % 8 == 0 ? static_cast<double>(state % 977) : 0.0;
            out[row * kCols + col] = static_cast<std::uint16_t>(ring + noise);
        }
    }
    return out;
}

std::span<const std::byte> bytes_of(std::span<const std::uint16_t> values) {
    return std::as_bytes(values);
}

pb::FrameHeader frame_header(std::uint64_t sequence, pb::FrameKind kind,
                             pb::Orientation orientation, pb::Encoding encoding,
                             std::size_t payload_size_bytes) {
    pb::FrameHeader header;
    header.set_run_id(kRunId);
    header.set_sequence(sequence);
    header.set_kind(kind);
    header.set_orientation(orientation);
    header.set_acquired_unix_ns(1715941863000000000 + static_cast<std::int64_t>(sequence) * 1000);
    header.set_sent_unix_ns(1715941863000000500 + static_cast<std::int64_t>(sequence) * 1000);
    header.set_exposure_s(0.5 + static_cast<double>(sequence));
    header.set_encoding(encoding);
    header.set_dtype(pb::PIXEL_DTYPE_UINT16);
    header.set_rows(kRows);
    header.set_cols(kCols);
    header.set_payload_size_bytes(payload_size_bytes);
    header.set_uncompressed_size_bytes(std::size_t{kRows} * kCols * sizeof(std::uint16_t));
    return header;
}

pb::ReducedFrame reduced_frame(std::uint64_t sequence, pb::Orientation orientation) {
    pb::ReducedFrame frame;
    frame.set_run_id(kRunId);
    frame.set_sequence(sequence);
    frame.set_orientation(orientation);
    frame.set_kind(pb::FRAME_KIND_DATA);
    frame.set_n_q(kNQ);
    frame.set_n_chi(kNChi);
    frame.mutable_q_axis()->set_lower(0.5);
    frame.mutable_q_axis()->set_upper(24.5);
    frame.mutable_q_axis()->set_unit("1/angstrom");
    frame.mutable_chi_axis()->set_lower(-180.0);
    frame.mutable_chi_axis()->set_upper(180.0);
    frame.mutable_chi_axis()->set_unit("deg");
    frame.set_frames_accumulated(sequence + 1);
    frame.set_worker("reduce-0");
    for (const auto quantity :
         {pb::CAKE_QUANTITY_INTENSITY, pb::CAKE_QUANTITY_VARIANCE, pb::CAKE_QUANTITY_COUNT}) {
        frame.add_parts()->set_quantity(quantity);
    }
    return frame;
}

std::vector<double> cake(std::uint64_t seed) {
    std::vector<double> values(std::size_t{kNChi} * kNQ);
    for (std::size_t i = 0; i < values.size(); ++i) {
        values[i] = std::sin(0.37 * static_cast<double>(i) + static_cast<double>(seed)) * 1e3 +
                    static_cast<double>(seed) / 7.0;
    }
    return values;
}

pb::AnalysisResult analysis_result(double alpha, bool final_result) {
    pb::AnalysisResult result;
    result.set_run_id(kRunId);
    result.set_alpha(alpha);
    result.set_alpha_stderr(alpha / 50.0);
    result.set_alpha_reduced_chi2(1.1);
    result.set_alpha_full_range(alpha * 0.9);
    result.set_alpha_full_range_stderr(alpha / 40.0);
    result.set_alpha_full_range_reduced_chi2(1.3);
    result.set_eps_aff(alpha * 1e-3);
    result.set_eps_aff_stderr(alpha * 2e-5);
    result.set_nu(0.36);
    if (final_result) {
        result.set_r_c_angstrom(4.25);
    }
    result.set_mechanism(final_result ? pb::MECHANISM_BOND_ROTATION : pb::MECHANISM_UNDETERMINED);
    result.set_corr_stretching(0.25);
    result.set_corr_rotation(0.75);
    result.set_first_peak_shift_angstrom(0.125);
    result.set_s2_chi2(321.5);
    result.set_s2_dof(11);
    result.set_n_frames_p(final_result ? 2 : 1);
    result.set_n_frames_n(final_result ? 2 : 1);
    result.set_mode(pb::EXTRACTION_MODE_PN);
    result.set_normalisation(pb::NORMALISATION_HIGH_Q);
    result.set_version("0.1.0");
    result.mutable_frames()->set_data_p(final_result ? 2 : 1);
    result.mutable_frames()->set_data_n(final_result ? 2 : 1);
    result.mutable_frames()->set_dark(1);
    result.set_is_final(final_result);
    return result;
}

std::vector<double> curve(std::size_t n, double scale) {
    std::vector<double> values(3 * n);
    for (std::size_t i = 0; i < n; ++i) {
        values[i] = 0.1 * static_cast<double>(i + 1);
        values[n + i] = scale * std::sin(values[i]);
        values[2 * n + i] = i % 5 == 0 ? std::numeric_limits<double>::quiet_NaN() : 1e-4 * scale;
    }
    return values;
}

FileReader::FileReader(const std::filesystem::path& path)
    : file_(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT)) {
    if (file_ < 0) {
        ADD_FAILURE() << "cannot open " << path;
    }
}

FileReader::~FileReader() {
    if (file_ >= 0) {
        H5Fclose(file_);
    }
}

std::vector<hsize_t> FileReader::dims(const std::string& path) const {
    const hid_t dataset = H5Dopen2(file_, path.c_str(), H5P_DEFAULT);
    const hid_t space = H5Dget_space(dataset);
    const int rank = H5Sget_simple_extent_ndims(space);
    std::vector<hsize_t> out(rank > 0 ? static_cast<std::size_t>(rank) : 0);
    if (rank > 0) {
        H5Sget_simple_extent_dims(space, out.data(), nullptr);
    }
    H5Sclose(space);
    H5Dclose(dataset);
    EXPECT_GE(rank, 0) << path;
    return out;
}

namespace {

template <class T>
std::vector<T> read_all(hid_t file, const std::string& path, hid_t memory_type) {
    const hid_t dataset = H5Dopen2(file, path.c_str(), H5P_DEFAULT);
    const hid_t space = H5Dget_space(dataset);
    const hssize_t n = H5Sget_simple_extent_npoints(space);
    std::vector<T> out(n > 0 ? static_cast<std::size_t>(n) : 0);
    const herr_t status =
        out.empty() ? 0 : H5Dread(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data());
    H5Sclose(space);
    H5Dclose(dataset);
    EXPECT_TRUE(dataset >= 0 && status >= 0) << "cannot read " << path;
    return out;
}

}  // namespace

std::vector<double> FileReader::doubles(const std::string& path) const {
    return read_all<double>(file_, path, H5T_NATIVE_DOUBLE);
}

std::vector<std::uint64_t> FileReader::uints(const std::string& path) const {
    return read_all<std::uint64_t>(file_, path, H5T_NATIVE_UINT64);
}

std::vector<std::int64_t> FileReader::ints(const std::string& path) const {
    return read_all<std::int64_t>(file_, path, H5T_NATIVE_INT64);
}

std::vector<std::uint8_t> FileReader::bytes(const std::string& path) const {
    const hid_t dataset = H5Dopen2(file_, path.c_str(), H5P_DEFAULT);
    const hid_t type = H5Dget_type(dataset);  // enums are read as their own type: same bytes
    const hid_t space = H5Dget_space(dataset);
    const hssize_t n = H5Sget_simple_extent_npoints(space);
    std::vector<std::uint8_t> out(n > 0 ? static_cast<std::size_t>(n) : 0);
    EXPECT_EQ(H5Tget_size(type), 1U) << path;
    const herr_t status =
        out.empty() ? 0 : H5Dread(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data());
    EXPECT_GE(status, 0) << path;
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(dataset);
    return out;
}

std::string FileReader::text(const std::string& path) const {
    const hid_t dataset = H5Dopen2(file_, path.c_str(), H5P_DEFAULT);
    const hid_t type = H5Dget_type(dataset);
    std::string out;
    if (H5Tis_variable_str(type) > 0) {
        char* data = nullptr;
        EXPECT_GE(H5Dread(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, static_cast<void*>(&data)),
                  0);
        out = data == nullptr ? "" : data;
        H5free_memory(data);
    } else {
        std::string buffer(H5Tget_size(type), '\0');
        EXPECT_GE(H5Dread(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()), 0);
        out = buffer.c_str();  // up to the first NUL pad
    }
    H5Tclose(type);
    H5Dclose(dataset);
    return out;
}

std::vector<std::string> FileReader::texts(const std::string& path) const {
    const hid_t dataset = H5Dopen2(file_, path.c_str(), H5P_DEFAULT);
    const hid_t type = H5Dget_type(dataset);
    const hid_t space = H5Dget_space(dataset);
    const hssize_t n = H5Sget_simple_extent_npoints(space);
    const std::size_t size = H5Tget_size(type);
    std::string buffer(size * static_cast<std::size_t>(std::max<hssize_t>(n, 0)), '\0');
    EXPECT_EQ(H5Tis_variable_str(type), 0) << path;
    if (n > 0) {
        EXPECT_GE(H5Dread(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()), 0) << path;
    }
    std::vector<std::string> out;
    for (hssize_t i = 0; i < n; ++i) {
        const char* entry = buffer.data() + static_cast<std::size_t>(i) * size;
        out.emplace_back(entry, strnlen(entry, size));  // a full entry has no NUL
    }
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(dataset);
    return out;
}

std::string FileReader::attr_text(const std::string& object, const std::string& name) const {
    const hid_t attr =
        H5Aopen_by_name(file_, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0) {
        ADD_FAILURE() << "no attribute " << name << " on " << object;
        return {};
    }
    const hid_t type = H5Aget_type(attr);
    char* data = nullptr;
    EXPECT_GE(H5Aread(attr, type, static_cast<void*>(&data)), 0);
    std::string out = data == nullptr ? "" : data;
    H5free_memory(data);
    H5Tclose(type);
    H5Aclose(attr);
    return out;
}

std::vector<std::byte> FileReader::chunk(const std::string& path, hsize_t row,
                                         std::uint32_t* filter_mask) const {
    const hid_t dataset = H5Dopen2(file_, path.c_str(), H5P_DEFAULT);
    const std::array<hsize_t, 3> offset{row, 0, 0};
    hsize_t size = 0;
    std::vector<std::byte> out;
    if (H5Dget_chunk_storage_size(dataset, offset.data(), &size) >= 0) {
        out.resize(size);
        EXPECT_GE(H5Dread_chunk(dataset, H5P_DEFAULT, offset.data(), filter_mask, out.data()), 0);
    } else {
        ADD_FAILURE() << "no chunk " << row << " in " << path;
    }
    H5Dclose(dataset);
    return out;
}

nlohmann::json h5py_dump(const std::filesystem::path& scratch,
                         const std::vector<std::filesystem::path>& files) {
    const std::filesystem::path out = scratch / "h5py_dump.json";
    const std::filesystem::path errors = scratch / "h5py_dump.stderr";
    std::vector<std::string> args{kPython.string(), reader_script().string(), "dump", out.string()};
    for (const auto& file : files) {
        args.push_back(file.string());
    }
    const int pid = spawn(args, -1, -1, errors);
    const int status = pid < 0 ? -1 : wait_for(pid);
    if (status != 0) {
        ADD_FAILURE() << "h5py_reader.py dump exited with " << status << ": " << read_file(errors);
        return nullptr;
    }
    return nlohmann::json::parse(read_file(out));
}

SwmrReader::SwmrReader(const std::filesystem::path& file, std::filesystem::path scratch)
    : file_(file), scratch_(std::move(scratch)) {
    std::array<int, 2> to_child{-1, -1};
    std::array<int, 2> from_child{-1, -1};
    if (pipe(to_child.data()) != 0 || pipe(from_child.data()) != 0) {
        ADD_FAILURE() << "pipe: " << std::error_code(errno, std::generic_category()).message();
        return;
    }
    pid_ = spawn({kPython.string(), reader_script().string(), "swmr", file.string()}, to_child[0],
                 from_child[1], scratch_ / "swmr_reader.stderr");
    close(to_child[0]);
    close(from_child[1]);
    to_child_ = to_child[1];
    from_child_ = from_child[0];
    if (pid_ < 0) {
        ADD_FAILURE() << "cannot start " << kPython;
    }
}

SwmrReader::~SwmrReader() {
    if (to_child_ >= 0) {
        close(to_child_);  // end of input: the reader leaves its loop
    }
    if (from_child_ >= 0) {
        close(from_child_);
    }
    if (pid_ > 0) {
        wait_for(pid_);
    }
}

std::string SwmrReader::read_line() {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(kReaderTimeoutMs);
    while (true) {
        if (const auto newline = buffer_.find('\n'); newline != std::string::npos) {
            std::string line = buffer_.substr(0, newline);
            buffer_.erase(0, newline + 1);
            return line;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd fd{from_child_, POLLIN, 0};
        if (left.count() <= 0 || poll(&fd, 1, static_cast<int>(left.count())) <= 0) {
            return {};
        }
        std::array<char, 256> chunk{};
        const ssize_t n = ::read(from_child_, chunk.data(), chunk.size());
        if (n <= 0) {
            return {};
        }
        buffer_.append(chunk.data(), static_cast<std::size_t>(n));
    }
}

void SwmrReader::write_line(const std::string& line) {
    const std::string text = line + "\n";
    EXPECT_EQ(::write(to_child_, text.data(), text.size()), static_cast<ssize_t>(text.size()));
}

nlohmann::json SwmrReader::dump() {
    const std::filesystem::path out =
        scratch_ / ("swmr_dump_" + std::to_string(dumps_++) + ".json");
    write_line("dump " + out.string());
    const std::string answer = read_line();
    if (answer != "dumped") {
        ADD_FAILURE() << "SWMR reader answered '" << answer << "': " << errors();
        return nullptr;
    }
    return nlohmann::json::parse(read_file(out)).at(file_.string());
}

int SwmrReader::quit() {
    write_line("quit");
    const int status = wait_for(pid_);
    pid_ = -1;
    return status;
}

std::string SwmrReader::errors() const { return read_file(scratch_ / "swmr_reader.stderr"); }

std::vector<double> json_doubles(const nlohmann::json& value) {
    std::vector<double> out;
    for (const auto& element : value) {
        out.push_back(element.is_null() ? std::numeric_limits<double>::quiet_NaN()
                                        : element.get<double>());
    }
    return out;
}

}  // namespace anisoflow::archive::sample
