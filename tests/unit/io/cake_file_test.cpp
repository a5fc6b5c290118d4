#include "anisoflow/io/cake_file.hpp"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hdf5.h>

#include "anisoflow/io/iq_text.hpp"
#include "anisoflow/testing/test_paths.hpp"

#include "fixture_writers.hpp"

namespace anisoflow::io {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
// %14.6e keeps 7 significant digits: a value read back is within half a unit of the 7th.
constexpr double kTextRelativeTolerance = 5e-7;

/// A 4 chi x 5 q cake with distinct values per cell; cell (chi 2, q 3) and q bin 4 are empty.
reduce::Cake make_cake(double scale, std::size_t frame_count) {
    reduce::Cake cake;
    cake.axes = {5, 4, 1.0, 6.0};
    for (std::size_t iq = 0; iq < 5; ++iq) {
        cake.q_inv_angstrom.push_back(cake.axes.q_centre(iq));
    }
    for (std::size_t ichi = 0; ichi < 4; ++ichi) {
        cake.chi_deg.push_back(cake.axes.chi_centre_deg(ichi));
    }
    for (std::size_t ichi = 0; ichi < 4; ++ichi) {
        for (std::size_t iq = 0; iq < 5; ++iq) {
            const bool empty = (ichi == 2 && iq == 3) || iq == 4;
            const double value = scale * static_cast<double>(10 * ichi + iq + 1);
            cake.intensity.push_back(empty ? kNan : value);
            cake.variance.push_back(empty ? kNan : value / 3.0);
            cake.count.push_back(empty ? 0.0 : static_cast<double>(ichi + iq + 1));
        }
    }
    for (std::size_t iq = 0; iq < 5; ++iq) {
        const bool empty = iq == 4;
        cake.intensity_1d.push_back(empty ? kNan : scale * (1234.5 + 1000.0 * iq));
        cake.variance_1d.push_back(empty ? kNan : scale * (17.0 + iq));
        cake.count_1d.push_back(empty ? 0.0 : 40.0 + iq);
    }
    cake.frame_count = frame_count;
    return cake;
}

/// Element-wise equality where NaN equals NaN.
void expect_same(const std::vector<double>& got, const std::vector<double>& expected,
                 const char* what) {
    ASSERT_EQ(got.size(), expected.size()) << what;
    for (std::size_t i = 0; i < got.size(); ++i) {
        if (std::isnan(expected[i])) {
            EXPECT_TRUE(std::isnan(got[i])) << what << "[" << i << "]";
        } else {
            EXPECT_EQ(got[i], expected[i]) << what << "[" << i << "]";
        }
    }
}

/// One frame [index] of a [n, ...] float64 dataset, through the raw HDF5 API.
std::vector<double> read_slab(const fs::path& file, const char* path, std::size_t index,
                              std::size_t n_values) {
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t dataset = H5Dopen2(f, path, H5P_DEFAULT);
    const hid_t space = H5Dget_space(dataset);
    const int rank = H5Sget_simple_extent_ndims(space);
    std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
    H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    std::vector<hsize_t> start(dims.size(), 0);
    std::vector<hsize_t> count = dims;
    start[0] = index;
    count[0] = 1;
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
    const hsize_t memory_dims[1] = {n_values};
    const hid_t memory = H5Screate_simple(1, memory_dims, nullptr);
    std::vector<double> values(n_values);
    H5Dread(dataset, H5T_NATIVE_DOUBLE, memory, space, H5P_DEFAULT, values.data());
    H5Sclose(memory);
    H5Sclose(space);
    H5Dclose(dataset);
    H5Fclose(f);
    return values;
}

CakeFileInfo make_info() {
    return {"0.1.0",
            "Distance: 0.3412\nWavelength: 1.2359e-11\n",
            R"({"n_q": 5, "n_chi": 4})",
            {"frames_*.h5::/entry/data/data", "dark.tif"}};
}

TEST(CakeFile, RoundTripsMeanCakeAndPerFrameCakes) {
    const fs::path file = testing::scratch_dir() / "cake.h5";
    const reduce::Cake first = make_cake(1.0, 1);
    const reduce::Cake second = make_cake(2.0, 1);
    const reduce::Cake mean = make_cake(1.5, 2);
    {
        auto writer = CakeFileWriter::create(file, mean.axes, make_info(), true);
        ASSERT_TRUE(writer.has_value()) << writer.error().message;
        ASSERT_TRUE(writer->append_frame(first).has_value());
        ASSERT_TRUE(writer->append_frame(second).has_value());
        EXPECT_EQ(writer->frames_written(), 2U);
        auto finished = writer->finish(mean);
        ASSERT_TRUE(finished.has_value()) << finished.error().message;
    }

    auto read = read_cake_file(file);
    ASSERT_TRUE(read.has_value()) << read.error().message;
    EXPECT_EQ(read->axes.n_q, 5U);
    EXPECT_EQ(read->axes.n_chi, 4U);
    EXPECT_EQ(read->axes.q_min_inv_angstrom, 1.0);
    EXPECT_EQ(read->axes.q_max_inv_angstrom, 6.0);
    EXPECT_EQ(read->frame_count, 2U);
    expect_same(read->q_inv_angstrom, mean.q_inv_angstrom, "q");
    expect_same(read->chi_deg, mean.chi_deg, "chi");
    expect_same(read->intensity, mean.intensity, "intensity");
    expect_same(read->variance, mean.variance, "variance");
    expect_same(read->count, mean.count, "count");
    expect_same(read->intensity_1d, mean.intensity_1d, "intensity_1d");
    expect_same(read->variance_1d, mean.variance_1d, "variance_1d");
    expect_same(read->count_1d, mean.count_1d, "count_1d");
    EXPECT_TRUE(read->is_empty(2, 3));
    EXPECT_TRUE(std::isnan(read->intensity[read->cell(2, 3)]));

    // The layout other programs (h5py, silx, NeXus viewers) rely on.
    using fixtures::read_dims;
    using fixtures::read_string_attribute;
    EXPECT_THAT(read_dims(file, "/entry/cake/intensity"), ElementsAre(4, 5));
    EXPECT_THAT(read_dims(file, "/entry/cake/variance"), ElementsAre(4, 5));
    EXPECT_THAT(read_dims(file, "/entry/cake/count"), ElementsAre(4, 5));
    EXPECT_THAT(read_dims(file, "/entry/i_q/intensity"), ElementsAre(5));
    EXPECT_THAT(read_dims(file, "/entry/frames/intensity"), ElementsAre(2, 4, 5));
    EXPECT_THAT(read_dims(file, "/entry/frames/variance"), ElementsAre(2, 4, 5));
    EXPECT_THAT(read_dims(file, "/entry/frames/count"), ElementsAre(2, 4, 5));
    EXPECT_THAT(read_dims(file, "/entry/frames/intensity_1d"), ElementsAre(2, 5));
    EXPECT_THAT(read_dims(file, "/entry/process/sources"), ElementsAre(2));
    EXPECT_THAT(read_string_attribute(file, "/", "default"), ElementsAre("entry"));
    EXPECT_THAT(read_string_attribute(file, "/", "creator"), ElementsAre("anisoflow 0.1.0"));
    EXPECT_THAT(read_string_attribute(file, "/entry", "NX_class"), ElementsAre("NXentry"));
    EXPECT_THAT(read_string_attribute(file, "/entry", "default"), ElementsAre("cake"));
    EXPECT_THAT(read_string_attribute(file, "/entry/program_name", "version"),
                ElementsAre("0.1.0"));
    EXPECT_THAT(read_string_attribute(file, "/entry/cake", "NX_class"), ElementsAre("NXdata"));
    EXPECT_THAT(read_string_attribute(file, "/entry/cake", "signal"), ElementsAre("intensity"));
    EXPECT_THAT(read_string_attribute(file, "/entry/cake", "axes"), ElementsAre("chi", "q"));
    EXPECT_THAT(read_string_attribute(file, "/entry/cake/q", "units"), ElementsAre("1/angstrom"));
    EXPECT_THAT(read_string_attribute(file, "/entry/cake/chi", "units"), ElementsAre("deg"));
    EXPECT_THAT(read_string_attribute(file, "/entry/i_q", "signal"), ElementsAre("intensity"));
    EXPECT_THAT(read_string_attribute(file, "/entry/i_q", "axes"), ElementsAre("q"));
    EXPECT_THAT(read_string_attribute(file, "/entry/process", "NX_class"),
                ElementsAre("NXprocess"));
    EXPECT_THAT(read_string_attribute(file, "/entry/frames", "axes"), ElementsAre(".", "chi", "q"));

    // Each appended frame landed in its own slot.
    expect_same(read_slab(file, "/entry/frames/intensity", 0, 20), first.intensity, "frame 0");
    expect_same(read_slab(file, "/entry/frames/intensity", 1, 20), second.intensity, "frame 1");
    expect_same(read_slab(file, "/entry/frames/count", 1, 20), second.count, "count 1");
    expect_same(read_slab(file, "/entry/frames/intensity_1d", 1, 5), second.intensity_1d, "i(q) 1");
}

TEST(CakeFile, WriterWithoutPerFrameOutputRefusesFramesAndWritesNoFrameGroup) {
    const fs::path file = testing::scratch_dir() / "mean_only.h5";
    const reduce::Cake mean = make_cake(1.0, 7);
    auto writer = CakeFileWriter::create(file, mean.axes, make_info(), false);
    ASSERT_TRUE(writer.has_value()) << writer.error().message;
    auto appended = writer->append_frame(mean);
    ASSERT_FALSE(appended.has_value());
    EXPECT_THAT(appended.error().message, HasSubstr("mean_only.h5"));
    EXPECT_THAT(appended.error().message, HasSubstr("without per-frame output"));
    ASSERT_TRUE(writer->finish(mean).has_value());
    EXPECT_FALSE(writer->finish(mean).has_value());  // finished once

    EXPECT_TRUE(fixtures::read_dims(file, "/entry/frames/intensity").empty());
    auto read = read_cake_file(file);
    ASSERT_TRUE(read.has_value()) << read.error().message;
    EXPECT_EQ(read->frame_count, 7U);
}

TEST(CakeFile, RejectsCakeOfOtherAxesAndUnwritablePath) {
    const fs::path dir = testing::scratch_dir();
    const reduce::Cake cake = make_cake(1.0, 1);
    auto writer = CakeFileWriter::create(dir / "cake.h5", cake.axes, make_info(), true);
    ASSERT_TRUE(writer.has_value()) << writer.error().message;
    reduce::Cake other = cake;
    other.axes.n_q = 6;
    auto appended = writer->append_frame(other);
    ASSERT_FALSE(appended.has_value());
    EXPECT_THAT(appended.error().message,
                HasSubstr("cake has 4 chi x 6 q bins but the file was created for 4 x 5"));
    reduce::Cake short_count = cake;
    short_count.count.pop_back();
    auto finished = writer->finish(short_count);
    ASSERT_FALSE(finished.has_value());
    EXPECT_THAT(finished.error().message, HasSubstr("cake count has 19 values, expected 20"));

    auto unwritable =
        CakeFileWriter::create(dir / "no_such_dir" / "cake.h5", cake.axes, make_info(), false);
    ASSERT_FALSE(unwritable.has_value());
    EXPECT_EQ(unwritable.error().code, ErrorCode::kIo);
    EXPECT_THAT(unwritable.error().message, HasSubstr("no_such_dir/cake.h5: cannot create"));
}

TEST(CakeFile, ReadingAFileWithoutCakeNamesTheMissingDataset) {
    const fs::path file = testing::scratch_dir() / "frames.h5";
    ASSERT_TRUE(fixtures::write_hdf5<double>(file, "/entry/data/data", {2, 2}, {1, 2, 3, 4}));
    auto read = read_cake_file(file);
    ASSERT_FALSE(read.has_value());
    EXPECT_THAT(read.error().message, HasSubstr("frames.h5: dataset /entry/cake/intensity not "
                                                "found: no group /entry/cake"));
}

TEST(IqText, WritesHeaderAndNonEmptyBinsThatParseBack) {
    const fs::path file = testing::scratch_dir() / "iq.dat";
    const reduce::Cake cake = make_cake(1.0, 3);
    ASSERT_TRUE(write_iq_text(file, cake, {"anisoflow 0.1.0", "poni: geometry.poni\nframes: 3"})
                    .has_value());

    std::ifstream in(file);
    std::vector<std::string> comments;
    std::vector<std::vector<double>> rows;
    for (std::string line; std::getline(in, line);) {
        if (line.rfind('#', 0) == 0) {
            comments.push_back(line);
            continue;
        }
        std::istringstream fields(line);
        std::vector<double> row;
        for (double value = 0; fields >> value;) {
            row.push_back(value);
        }
        rows.push_back(row);
    }
    EXPECT_THAT(comments, ElementsAre("# anisoflow 0.1.0", "# poni: geometry.poni", "# frames: 3",
                                      "#  q_A^-1  I  sigma"));
    ASSERT_EQ(rows.size(), 4U);  // q bin 4 is empty
    for (std::size_t iq = 0; iq < rows.size(); ++iq) {
        ASSERT_EQ(rows[iq].size(), 3U);
        EXPECT_NEAR(rows[iq][0], cake.q_inv_angstrom[iq],
                    kTextRelativeTolerance * cake.q_inv_angstrom[iq]);
        EXPECT_NEAR(rows[iq][1], cake.intensity_1d[iq],
                    kTextRelativeTolerance * cake.intensity_1d[iq]);
        const double sigma = std::sqrt(cake.variance_1d[iq]);
        EXPECT_NEAR(rows[iq][2], sigma, kTextRelativeTolerance * sigma);
    }

    std::ifstream again(file);
    std::string line;
    for (int i = 0; i < 5; ++i) {
        std::getline(again, line);
    }
    EXPECT_EQ(line, "  1.500000e+00   1.234500e+03   4.123106e+00");  // %14.6e columns
}

TEST(IqText, ReportsUnwritablePath) {
    const fs::path file = testing::scratch_dir() / "missing_dir" / "iq.dat";
    auto written = write_iq_text(file, make_cake(1.0, 1), {});
    ASSERT_FALSE(written.has_value());
    EXPECT_EQ(written.error().code, ErrorCode::kIo);
    EXPECT_THAT(written.error().message, HasSubstr("missing_dir/iq.dat: cannot create"));
}

}  // namespace
}  // namespace anisoflow::io
