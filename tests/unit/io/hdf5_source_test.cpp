#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <variant>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "anisoflow/io/frame_source.hpp"
#include "anisoflow/io/mask.hpp"
#include "anisoflow/testing/test_paths.hpp"

#include "fixture_writers.hpp"

namespace anisoflow::io {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

constexpr std::size_t kReferenceMaskedPixels = 49644;  // shared/reference/integration/frame.h5

/// Opens `spec`, failing the test with the error message when it cannot.
std::unique_ptr<FrameSource> open_or_fail(const std::string& spec) {
    auto source = open_frame_source(spec);
    EXPECT_TRUE(source.has_value()) << source.error().message;
    return source ? std::move(*source) : nullptr;
}

template <class T>
std::vector<T> pixels_of(const Frame& frame) {
    const auto* pixels = std::get_if<std::vector<T>>(&frame.pixels);
    return pixels != nullptr ? *pixels : std::vector<T>{};
}

/// Writes a [3, 4, 5] stack of T with values i*scale+offset and reads it back frame by frame.
template <class T>
void expect_stack_round_trip(PixelType expected_type, double scale, double offset) {
    const fs::path file = testing::scratch_dir() / "stack.h5";
    const auto values = fixtures::ramp<T>(60, scale, offset);
    ASSERT_TRUE(fixtures::write_hdf5<T>(file, "/entry/data/data", {3, 4, 5}, values));
    auto source = open_or_fail(file.string());
    ASSERT_NE(source, nullptr);
    EXPECT_EQ(source->frame_count(), 3U);
    EXPECT_EQ(source->shape(), (FrameShape{4, 5}));
    EXPECT_EQ(source->pixel_type(), expected_type);
    for (std::size_t index : {2U, 0U, 1U}) {
        auto frame = source->read_frame(index);
        ASSERT_TRUE(frame.has_value()) << frame.error().message;
        EXPECT_EQ(frame->index_in_source, index);
        EXPECT_EQ(frame->pixel_type(), expected_type);
        const auto got = to_double(frame->view().pixels);
        ASSERT_EQ(got.size(), 20U);
        for (std::size_t i = 0; i < got.size(); ++i) {
            EXPECT_EQ(got[i], static_cast<double>(values[index * 20 + i])) << "pixel " << i;
        }
    }
}

TEST(Hdf5FrameSource, ReadsTwoDimensionalDatasetAsOneFrame) {
    const fs::path file = testing::scratch_dir() / "image.h5";
    ASSERT_TRUE(fixtures::write_hdf5<std::uint16_t>(file, "/entry/data/data", {3, 4},
                                                    fixtures::ramp<std::uint16_t>(12, 7, 1)));
    auto source = open_or_fail(file.string());
    ASSERT_NE(source, nullptr);
    EXPECT_EQ(source->frame_count(), 1U);
    EXPECT_EQ(source->shape(), (FrameShape{3, 4}));
    EXPECT_EQ(source->describe(), file.string() + "::/entry/data/data");
    auto frame = source->read_frame(0);
    ASSERT_TRUE(frame.has_value()) << frame.error().message;
    EXPECT_EQ(pixels_of<std::uint16_t>(*frame), fixtures::ramp<std::uint16_t>(12, 7, 1));
    EXPECT_FALSE(frame->exposure_s.has_value());
    EXPECT_FALSE(source->read_frame(1).has_value());
}

TEST(Hdf5FrameSource, ReadsEachNumericTypeInItsOwnPixelType) {
    {
        SCOPED_TRACE("uint8");
        expect_stack_round_trip<std::uint8_t>(PixelType::kUint8, 3, 2);
    }
    {
        SCOPED_TRACE("uint16");
        expect_stack_round_trip<std::uint16_t>(PixelType::kUint16, 1000, 5);
    }
    {
        SCOPED_TRACE("int32");
        expect_stack_round_trip<std::int32_t>(PixelType::kInt32, -70000, 12);
    }
    {
        SCOPED_TRACE("float32");
        expect_stack_round_trip<float>(PixelType::kFloat32, 0.25, -3.5);
    }
    {
        SCOPED_TRACE("float64");
        expect_stack_round_trip<double>(PixelType::kFloat64, 1e-3, 1e6);
    }
}

TEST(Hdf5FrameSource, ConvertsSixtyFourBitIntegersToFloat64) {
    expect_stack_round_trip<std::int64_t>(PixelType::kFloat64, 1e9, -5);
}

TEST(Hdf5FrameSource, ReadsChunkedGzipStackFrameByFrame) {
    const fs::path file = testing::scratch_dir() / "gzip.h5";
    constexpr std::size_t kFrames = 5;
    constexpr std::size_t kRows = 64;
    constexpr std::size_t kCols = 48;
    const auto values = fixtures::ramp<std::uint16_t>(kFrames * kRows * kCols, 1, 3);
    ASSERT_TRUE(fixtures::write_hdf5<std::uint16_t>(
        file, "/entry/data/data", {kFrames, kRows, kCols}, values, {{1, 16, 16}, 4}));
    auto source = open_or_fail(file.string());
    ASSERT_NE(source, nullptr);
    ASSERT_EQ(source->frame_count(), kFrames);
    for (std::size_t index : {4U, 0U, 1U, 2U, 3U}) {
        auto frame = source->read_frame(index);
        ASSERT_TRUE(frame.has_value()) << frame.error().message;
        const std::vector<std::uint16_t> expected(
            values.begin() + static_cast<std::ptrdiff_t>(index * kRows * kCols),
            values.begin() + static_cast<std::ptrdiff_t>((index + 1) * kRows * kCols));
        EXPECT_EQ(pixels_of<std::uint16_t>(*frame), expected) << "frame " << index;
    }
}

TEST(Hdf5FrameSource, ReadsStackChunkedAcrossSeveralFrames) {
    // Chunks of 3 frames x 256 x 256 float32 exceed HDF5's 1 MiB default chunk cache.
    const fs::path file = testing::scratch_dir() / "deep_chunks.h5";
    const auto values = fixtures::ramp<float>(4 * 256 * 300, 0.5, 0);
    ASSERT_TRUE(fixtures::write_hdf5<float>(file, "/entry/data/data", {4, 256, 300}, values,
                                            {{3, 256, 256}, 1}));
    auto source = open_or_fail(file.string());
    ASSERT_NE(source, nullptr);
    for (std::size_t index = 0; index < 4; ++index) {
        auto frame = source->read_frame(index);
        ASSERT_TRUE(frame.has_value()) << frame.error().message;
        const auto pixels = pixels_of<float>(*frame);
        ASSERT_EQ(pixels.size(), 256U * 300U);
        EXPECT_EQ(pixels.front(), values[index * 256 * 300]);
        EXPECT_EQ(pixels.back(), values[(index + 1) * 256 * 300 - 1]);
    }
}

TEST(Hdf5FrameSource, SelectsDatasetAfterDoubleColon) {
    const fs::path file = testing::scratch_dir() / "custom.h5";
    ASSERT_TRUE(fixtures::write_hdf5<float>(file, "/custom/path", {2, 2, 3},
                                            fixtures::ramp<float>(12, 2, 0)));
    auto source = open_or_fail(file.string() + "::/custom/path");
    ASSERT_NE(source, nullptr);
    EXPECT_EQ(source->describe(), file.string() + "::/custom/path");
    EXPECT_EQ(source->frame_count(), 2U);
    auto frame = source->read_frame(1);
    ASSERT_TRUE(frame.has_value());
    EXPECT_EQ(pixels_of<float>(*frame), (std::vector<float>{12, 14, 16, 18, 20, 22}));

    auto relative = open_or_fail(file.string() + "::custom/path");  // leading '/' optional
    ASSERT_NE(relative, nullptr);
    EXPECT_EQ(relative->frame_count(), 2U);
}

TEST(Hdf5FrameSource, SetsExposureFromScalarOrPerFrameCountTime) {
    const fs::path dir = testing::scratch_dir();
    const fs::path scalar = dir / "scalar.h5";
    ASSERT_TRUE(fixtures::write_hdf5<std::uint16_t>(scalar, "/entry/data/data", {2, 2, 2},
                                                    fixtures::ramp<std::uint16_t>(8)));
    ASSERT_TRUE(fixtures::write_hdf5_scalar(scalar, "/entry/instrument/detector/count_time", 0.5));
    auto source = open_or_fail(scalar.string());
    ASSERT_NE(source, nullptr);
    auto frame = source->read_frame(1);
    ASSERT_TRUE(frame.has_value());
    EXPECT_EQ(frame->exposure_s, 0.5);

    const fs::path per_frame = dir / "per_frame.h5";
    ASSERT_TRUE(fixtures::write_hdf5<std::uint16_t>(per_frame, "/entry/data/data", {2, 2, 2},
                                                    fixtures::ramp<std::uint16_t>(8)));
    ASSERT_TRUE(fixtures::write_hdf5<double>(per_frame, "/entry/instrument/detector/count_time",
                                             {2}, {0.1, 0.2}));
    source = open_or_fail(per_frame.string());
    ASSERT_NE(source, nullptr);
    EXPECT_EQ(source->read_frame(0)->exposure_s, 0.1);
    EXPECT_EQ(source->read_frame(1)->exposure_s, 0.2);

    const fs::path wrong_length = dir / "wrong_length.h5";
    ASSERT_TRUE(fixtures::write_hdf5<std::uint16_t>(wrong_length, "/entry/data/data", {2, 2, 2},
                                                    fixtures::ramp<std::uint16_t>(8)));
    ASSERT_TRUE(fixtures::write_hdf5<double>(wrong_length, "/entry/instrument/detector/count_time",
                                             {3}, {0.1, 0.2, 0.3}));
    auto error = open_frame_source(wrong_length.string());
    ASSERT_FALSE(error.has_value());
    EXPECT_THAT(error.error().message, HasSubstr("wrong_length.h5"));
    EXPECT_THAT(error.error().message, HasSubstr("count_time has 3 values for 2 frames"));
}

TEST(Hdf5FrameSource, ReadsSharedReferenceFrameAndItsMask) {
    const fs::path file = testing::reference_dir() / "integration" / "frame.h5";
    auto source = open_or_fail(file.string());
    ASSERT_NE(source, nullptr);
    EXPECT_EQ(source->frame_count(), 1U);
    EXPECT_EQ(source->shape(), (FrameShape{2048, 2048}));
    EXPECT_EQ(source->pixel_type(), PixelType::kUint16);
    auto frame = source->read_frame(0);
    ASSERT_TRUE(frame.has_value()) << frame.error().message;
    EXPECT_EQ(pixels_of<std::uint16_t>(*frame).size(), 2048U * 2048U);
    EXPECT_TRUE(check_shape(*source, {2048, 2048}).has_value());

    for (const std::string& spec :
         {file.string(), file.string() + "::/entry/instrument/detector/pixel_mask"}) {
        auto mask = read_mask(spec, {2048, 2048});
        ASSERT_TRUE(mask.has_value()) << mask.error().message;
        EXPECT_EQ(static_cast<std::size_t>(std::count(mask->begin(), mask->end(), 1)),
                  kReferenceMaskedPixels);
        EXPECT_EQ(static_cast<std::size_t>(std::count(mask->begin(), mask->end(), 0)),
                  2048U * 2048U - kReferenceMaskedPixels);
    }
}

TEST(Hdf5FrameSource, ReportsMissingFileAndNonHdf5File) {
    const fs::path dir = testing::scratch_dir();
    auto missing = open_frame_source((dir / "absent.h5").string());
    ASSERT_FALSE(missing.has_value());
    EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
    EXPECT_THAT(missing.error().message, HasSubstr("absent.h5: file not found"));

    const fs::path text = dir / "notes.h5";
    std::ofstream(text) << "this is not HDF5\n";
    auto not_hdf5 = open_frame_source(text.string());
    ASSERT_FALSE(not_hdf5.has_value());
    EXPECT_THAT(not_hdf5.error().message, HasSubstr("notes.h5: not an HDF5 file"));
}

TEST(Hdf5FrameSource, ReportsTruncatedFile) {
    const fs::path file = testing::scratch_dir() / "truncated.h5";
    ASSERT_TRUE(fixtures::write_hdf5<std::uint16_t>(file, "/entry/data/data", {4, 32, 32},
                                                    fixtures::ramp<std::uint16_t>(4 * 32 * 32)));
    fs::resize_file(file, fs::file_size(file) / 2);
    auto source = open_frame_source(file.string());
    ASSERT_FALSE(source.has_value());
    EXPECT_EQ(source.error().code, ErrorCode::kCorrupt);
    EXPECT_THAT(source.error().message, HasSubstr("truncated.h5"));
    EXPECT_THAT(source.error().message, HasSubstr("truncated file: eof"));  // HDF5's own words
}

TEST(Hdf5FrameSource, ReportsCorruptCompressedChunkWhenReadingThatFrame) {
    const fs::path file = testing::scratch_dir() / "garbled.h5";
    constexpr std::size_t kFramePixels = 128 * 128;
    std::vector<std::uint16_t> values(4 * kFramePixels);
    for (std::size_t i = 0; i < values.size(); ++i) {
        values[i] = static_cast<std::uint16_t>((i * 2654435761U) >> 7U);  // poorly compressible
    }
    ASSERT_TRUE(fixtures::write_hdf5<std::uint16_t>(file, "/entry/data/data", {4, 128, 128}, values,
                                                    {{1, 128, 128}, 6}));
    {
        // Overwrite the middle of the file (inside the compressed chunks) with junk.
        std::fstream stream(file, std::ios::in | std::ios::out | std::ios::binary);
        stream.seekp(static_cast<std::streamoff>(fs::file_size(file) / 2));
        const std::string junk(4096, '\x5a');
        stream.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    auto source = open_or_fail(file.string());
    ASSERT_NE(source, nullptr);
    bool any_failed = false;
    for (std::size_t index = 0; index < 4; ++index) {
        auto frame = source->read_frame(index);
        if (!frame) {
            any_failed = true;
            EXPECT_EQ(frame.error().code, ErrorCode::kCorrupt);
            EXPECT_THAT(frame.error().message, HasSubstr("garbled.h5::/entry/data/data"));
            EXPECT_THAT(frame.error().message,
                        HasSubstr("cannot read frame " + std::to_string(index)));
        }
    }
    EXPECT_TRUE(any_failed) << "junk inside a gzip chunk went unnoticed";
}

TEST(Hdf5FrameSource, ReportsMissingDatasetAndListsParentGroup) {
    const fs::path file = testing::scratch_dir() / "frames.h5";
    ASSERT_TRUE(fixtures::write_hdf5<std::uint16_t>(file, "/entry/data/image", {2, 2},
                                                    fixtures::ramp<std::uint16_t>(4)));
    ASSERT_TRUE(fixtures::write_hdf5<std::uint16_t>(file, "/entry/data/dark", {2, 2},
                                                    fixtures::ramp<std::uint16_t>(4)));
    auto missing = open_frame_source(file.string());  // default /entry/data/data
    ASSERT_FALSE(missing.has_value());
    EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
    EXPECT_THAT(missing.error().message, HasSubstr("frames.h5"));
    EXPECT_THAT(missing.error().message,
                HasSubstr("dataset /entry/data/data not found (/entry/data holds: dark, image)"));

    auto deeper = open_frame_source(file.string() + "::/scan/1/data");
    ASSERT_FALSE(deeper.has_value());
    EXPECT_THAT(deeper.error().message,
                HasSubstr("dataset /scan/1/data not found: no group /scan"));
    EXPECT_THAT(deeper.error().message, HasSubstr("/ holds: entry"));

    auto group = open_frame_source(file.string() + "::/entry/data");
    ASSERT_FALSE(group.has_value());
    EXPECT_THAT(group.error().message, HasSubstr("/entry/data is a group, not a dataset"));
}

TEST(Hdf5FrameSource, RejectsRankOneAndNonNumericDatasets) {
    const fs::path file = testing::scratch_dir() / "odd.h5";
    ASSERT_TRUE(fixtures::write_hdf5<float>(file, "/line", {6}, fixtures::ramp<float>(6)));
    ASSERT_TRUE(fixtures::write_hdf5_string(file, "/title", "not pixels"));
    auto rank_one = open_frame_source(file.string() + "::/line");
    ASSERT_FALSE(rank_one.has_value());
    EXPECT_EQ(rank_one.error().code, ErrorCode::kUnsupported);
    EXPECT_THAT(rank_one.error().message, HasSubstr("odd.h5::/line"));
    EXPECT_THAT(rank_one.error().message, HasSubstr("rank 1 (shape [6])"));

    auto text = open_frame_source(file.string() + "::/title");
    ASSERT_FALSE(text.has_value());
    EXPECT_THAT(text.error().message, HasSubstr("odd.h5::/title"));
    EXPECT_THAT(text.error().message, HasSubstr("unsupported string data type"));
}

// Found while writing fuzz_io_hdf5 (docs/fuzzing.md): a dataset's dimensions are only a
// declaration (a chunked dataset never written costs nothing), so a small file could make
// read_frame() allocate terabytes, or wrap rows x cols to a small buffer that HDF5 then overruns.
// Frames beyond kMaxFrameBytes are refused when the file is opened.
TEST(Hdf5FrameSource, RefusesAFrameLargerThanTheBoundBeforeAllocatingIt) {
    const fs::path file = testing::scratch_dir() / "huge.h5";
    const hid_t h5 = H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(h5, 0);
    const hsize_t dims[2] = {hsize_t{1} << 20, hsize_t{1} << 20};  // 4 TiB of uint32
    const hsize_t chunk[2] = {1, 1024};
    const hid_t space = H5Screate_simple(2, dims, nullptr);
    const hid_t create = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(create, 2, chunk);
    const hid_t dataset =
        H5Dcreate2(h5, "/huge", H5T_STD_U32LE, space, H5P_DEFAULT, create, H5P_DEFAULT);
    ASSERT_GE(dataset, 0);
    H5Dclose(dataset);
    H5Pclose(create);
    H5Sclose(space);
    H5Fclose(h5);
    ASSERT_LT(fs::file_size(file), 1U << 20);

    auto source = open_frame_source(file.string() + "::/huge");
    ASSERT_FALSE(source.has_value());
    EXPECT_EQ(source.error().code, ErrorCode::kUnsupported);
    EXPECT_THAT(source.error().message,
                HasSubstr("huge.h5::/huge: frame shape 1048576x1048576 of uint32 is larger than "
                          "the 1073741824 bytes a frame may take"));
    auto mask = read_mask(file.string() + "::/huge", {1U << 20, 1U << 20});
    ASSERT_FALSE(mask.has_value());
    EXPECT_THAT(mask.error().message, HasSubstr("larger than"));
}

/// Declares (never writes) a chunked uint16 dataset of `dims` at /entry/data/data.
void declare_chunked_stack(const fs::path& file, const std::vector<hsize_t>& dims,
                           const std::vector<hsize_t>& chunk) {
    const hid_t h5 = H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(h5, 0);
    const hid_t groups = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(groups, 1);
    const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    const hid_t create = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(create, static_cast<int>(chunk.size()), chunk.data());
    const hid_t dataset =
        H5Dcreate2(h5, "/entry/data/data", H5T_STD_U16LE, space, groups, create, H5P_DEFAULT);
    ASSERT_GE(dataset, 0);
    H5Dclose(dataset);
    H5Pclose(create);
    H5Sclose(space);
    H5Pclose(groups);
    H5Fclose(h5);
}

// Found by fuzz_io_hdf5 (docs/fuzzing.md): an 11 kB file declaring a [2, 6, 4194309] uint16
// stack in chunks of 1 x 6 x 5 pixels (838,862 chunks per 50 MB frame). HDF5 1.10 keeps ~2.4 KB
// of bookkeeping per chunk a read selects, so reading frame 0 took 2 GB (libFuzzer's
// out-of-memory). Chunks splitting a frame into more than 65,536 are refused when it is opened.
TEST(Hdf5FrameSource, RefusesChunksThatSplitAFrameIntoTooManyPieces) {
    const fs::path file = testing::scratch_dir() / "tiny_chunks.h5";
    declare_chunked_stack(file, {2, 6, 4194309}, {1, 6, 5});
    auto source = open_frame_source(file.string());
    ASSERT_FALSE(source.has_value());
    EXPECT_EQ(source.error().code, ErrorCode::kUnsupported);
    EXPECT_THAT(source.error().message,
                HasSubstr("tiny_chunks.h5::/entry/data/data: chunks of [1, 6, 5] in a "
                          "dataset of shape [2, 6, 4194309] split each frame into 838862 "
                          "chunks, more than the 65536 a frame may span"));
    auto mask = read_mask(file.string() + "::/entry/data/data", {6, 4194309});
    ASSERT_FALSE(mask.has_value());
    EXPECT_THAT(mask.error().message, HasSubstr("838862 chunks"));

    // The bound itself: a 4096 x 4096 frame in 16 x 16 tiles opens, one more column does not.
    declare_chunked_stack(file, {1, 4096, 4096}, {1, 16, 16});
    EXPECT_TRUE(open_frame_source(file.string()).has_value());
    declare_chunked_stack(file, {1, 4096, 4097}, {1, 16, 16});
    auto wider = open_frame_source(file.string());
    ASSERT_FALSE(wider.has_value());
    EXPECT_THAT(wider.error().message, HasSubstr("into 65792 chunks"));
}

/// Declares (never writes) a dataset of `dims` at `path` of `base` widened to `bytes` per element.
void declare_wide_numbers(const fs::path& file, const char* path, const std::vector<hsize_t>& dims,
                          hid_t base, std::size_t bytes) {
    const hid_t h5 = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(h5, 0);
    const hid_t groups = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(groups, 1);
    const hid_t type = H5Tcopy(base);
    ASSERT_GE(H5Tset_size(type, bytes), 0);
    const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    const hid_t dataset = H5Dcreate2(h5, path, type, space, groups, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(dataset, 0);
    H5Dclose(dataset);
    H5Sclose(space);
    H5Tclose(type);
    H5Pclose(groups);
    H5Fclose(h5);
}

// Found by fuzz_io_hdf5 (docs/fuzzing.md): an 11 kB file whose /mask (4 x 4) declares a
// 34,359,216,128-bit integer, or whose count_time declares a 2 GB float. HDF5 allocates and fills
// a conversion buffer of at least one element before reading: 2 GB of memory for 16 pixels, or
// one malloc beyond libFuzzer's limit. Numbers wider than 16 bytes are refused before the read.
TEST(Hdf5FrameSource, RefusesNumbersWiderThanSixteenBytes) {
    const fs::path file = testing::scratch_dir() / "wide.h5";
    ASSERT_TRUE(fixtures::write_hdf5<std::uint16_t>(file, "/entry/data/data", {2, 4, 4},
                                                    std::vector<std::uint16_t>(32)));
    declare_wide_numbers(file, "/mask", {4, 4}, H5T_STD_U8LE, 17);
    auto mask = read_mask(file.string() + "::/mask", {4, 4});
    ASSERT_FALSE(mask.has_value());
    EXPECT_EQ(mask.error().code, ErrorCode::kUnsupported);
    EXPECT_THAT(mask.error().message,
                HasSubstr("wide.h5::/mask: unsupported 17-byte integer data type (numbers of 1 "
                          "to 16 bytes are read)"));

    // 16 bytes (128-bit integers, x86 long doubles) still convert to float64.
    declare_wide_numbers(file, "/mask16", {4, 4}, H5T_STD_U8LE, 16);
    auto wide_mask = read_mask(file.string() + "::/mask16", {4, 4});
    EXPECT_TRUE(wide_mask.has_value()) << wide_mask.error().message;

    declare_wide_numbers(file, "/entry/instrument/detector/count_time", {2}, H5T_IEEE_F64LE,
                         32);  // one per frame
    auto source = open_frame_source(file.string());
    ASSERT_FALSE(source.has_value());
    EXPECT_THAT(source.error().message,
                HasSubstr("/entry/instrument/detector/count_time: unsupported 32-byte float data "
                          "type"));
}

TEST(FrameShapeCheck, NamesSourceAndBothShapes) {
    const fs::path file = testing::scratch_dir() / "frames.h5";
    ASSERT_TRUE(fixtures::write_hdf5<std::uint16_t>(file, "/entry/data/data", {1024, 1024},
                                                    std::vector<std::uint16_t>(1024 * 1024)));
    auto source = open_or_fail(file.string());
    ASSERT_NE(source, nullptr);
    auto checked = check_shape(*source, {2048, 2048});
    ASSERT_FALSE(checked.has_value());
    EXPECT_EQ(checked.error().message,
              file.string() +
                  "::/entry/data/data: frame shape 1024x1024 does not match the detector's "
                  "2048x2048");
    EXPECT_TRUE(check_shape(*source, {1024, 1024}).has_value());
}

}  // namespace
}  // namespace anisoflow::io
