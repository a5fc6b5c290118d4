#pragma once
// Sample run messages and payloads for the archive tests, and readers of the written files: the
// HDF5 C API in process and h5py (h5py_reader.py) in a child process.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <hdf5.h>
#include <nlohmann/json.hpp>

#include "anisoflow/stream/v1/stream.pb.h"

namespace anisoflow::archive::sample {

namespace pb = ::anisoflow::stream::v1;

inline constexpr std::uint32_t kRows = 16;  // a small detector: 16 x 24 uint16 pixels
inline constexpr std::uint32_t kCols = 24;
inline constexpr std::uint32_t kNChi = 8;
inline constexpr std::uint32_t kNQ = 12;
inline const std::string kRunId = "2024-05-17T10:31:02Z-ZrCu-01";

pb::RunStart run_start();

/// Stepped rings plus sparse deterministic noise: compressible, and every frame differs.
std::vector<std::uint16_t> pixels(std::uint64_t seed);
std::span<const std::byte> bytes_of(std::span<const std::uint16_t> values);

pb::FrameHeader frame_header(std::uint64_t sequence, pb::FrameKind kind,
                             pb::Orientation orientation, pb::Encoding encoding,
                             std::size_t payload_size_bytes);

pb::ReducedFrame reduced_frame(std::uint64_t sequence, pb::Orientation orientation);
std::vector<double> cake(std::uint64_t seed);  ///< n_chi x n_q values

pb::AnalysisResult analysis_result(double alpha, bool final_result);
/// A curve payload: 3 x n values (x, value, variance).
std::vector<double> curve(std::size_t n, double scale);

/// Reads a closed archive with the HDF5 C API; asserts (gtest ADD_FAILURE) on a failing call.
class FileReader {
  public:
    explicit FileReader(const std::filesystem::path& path);
    ~FileReader();
    FileReader(const FileReader&) = delete;
    FileReader& operator=(const FileReader&) = delete;

    [[nodiscard]] bool ok() const { return file_ >= 0; }
    [[nodiscard]] std::vector<hsize_t> dims(const std::string& path) const;
    [[nodiscard]] std::vector<double> doubles(const std::string& path) const;
    [[nodiscard]] std::vector<std::uint64_t> uints(const std::string& path) const;
    [[nodiscard]] std::vector<std::int64_t> ints(const std::string& path) const;
    /// An enum or small integer dataset as its numeric values.
    [[nodiscard]] std::vector<std::uint8_t> bytes(const std::string& path) const;
    /// A scalar string dataset (fixed or variable length).
    [[nodiscard]] std::string text(const std::string& path) const;
    /// A 1-D fixed-length string dataset, each entry up to its first NUL.
    [[nodiscard]] std::vector<std::string> texts(const std::string& path) const;
    [[nodiscard]] std::string attr_text(const std::string& object, const std::string& name) const;
    /// The stored bytes and filter mask of chunk `row` of a [n, rows, cols] dataset.
    [[nodiscard]] std::vector<std::byte> chunk(const std::string& path, hsize_t row,
                                               std::uint32_t* filter_mask) const;

  private:
    hid_t file_ = -1;
};

/// The interpreter with Debian's python3-h5py (not a virtual environment's python3).
inline const std::filesystem::path kPython = "/usr/bin/python3";

/// Runs `h5py_reader.py dump` on the files; the parsed JSON, keyed by file path. Fails the test
/// (and returns null) when the reader exits non-zero.
nlohmann::json h5py_dump(const std::filesystem::path& scratch,
                         const std::vector<std::filesystem::path>& files);

/// A running `h5py_reader.py swmr FILE`: a SWMR reader in another process.
class SwmrReader {
  public:
    SwmrReader(const std::filesystem::path& file, std::filesystem::path scratch);
    ~SwmrReader();
    SwmrReader(const SwmrReader&) = delete;
    SwmrReader& operator=(const SwmrReader&) = delete;

    /// The reader's next line of output ("" on end of file or after a 30 s timeout).
    std::string read_line();
    /// Asks the reader to refresh and dump; the file's JSON (null on failure).
    nlohmann::json dump();
    /// Sends "quit" and returns the exit status (-1 when it did not exit normally).
    int quit();
    /// Everything the reader wrote to stderr so far, for failure messages.
    [[nodiscard]] std::string errors() const;

  private:
    void write_line(const std::string& line);
    std::filesystem::path file_;
    std::filesystem::path scratch_;
    int pid_ = -1;
    int to_child_ = -1;
    int from_child_ = -1;
    std::string buffer_;
    int dumps_ = 0;
};

/// Value of a dumped dataset as doubles (null = NaN).
std::vector<double> json_doubles(const nlohmann::json& value);

}  // namespace anisoflow::archive::sample
