// The archive read by an independent reader: h5py with the HDF5 LZ4 and bitshuffle plugins
// (h5py_reader.py), on closed files and as a SWMR reader while the run is being written.

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "anisoflow/archive/run_archive.hpp"
#include "anisoflow/codec/bitshuffle.hpp"
#include "anisoflow/codec/lz4.hpp"
#include "anisoflow/testing/test_paths.hpp"

#include "archive_samples.hpp"

namespace anisoflow::archive {
namespace {

namespace s = sample;
using nlohmann::json;

constexpr std::size_t kFrameBytes = std::size_t{s::kRows} * s::kCols * sizeof(std::uint16_t);
constexpr unsigned kOptional = 1;  // H5Z_FLAG_OPTIONAL

/// The pixels h5py decoded, frame by frame, flattened.
std::vector<std::vector<std::uint16_t>> frames_of(const json& file) {
    std::vector<std::vector<std::uint16_t>> frames;
    for (const auto& frame : file.at("/entry/data/data").at("value")) {
        std::vector<std::uint16_t> pixels;
        for (const auto& row : frame) {
            for (const auto& pixel : row) {
                pixels.push_back(pixel.get<std::uint16_t>());
            }
        }
        frames.push_back(std::move(pixels));
    }
    return frames;
}

std::string text_of(const json& file, const std::string& path) {
    return file.at(path).at("value").get<std::string>();
}

Result<void> append_raw(RunArchive& archive, std::uint64_t sequence, pb::Orientation orientation,
                        std::span<const std::uint16_t> pixels) {
    return archive.append_raw(
        s::frame_header(sequence, pb::FRAME_KIND_DATA, orientation, pb::ENCODING_RAW, kFrameBytes),
        s::bytes_of(pixels));
}

TEST(H5pyReader, DecodesEveryStoredFormatAndReadsTheWholeTree) {
    const auto dir = testing::scratch_dir();
    const auto bslz4_path = dir / "bslz4.h5";
    const auto lz4_path = dir / "lz4.h5";
    std::vector<std::vector<std::uint16_t>> frames;
    for (std::uint64_t i = 0; i < 4; ++i) {
        frames.push_back(s::pixels(100 + i));
    }
    const std::vector<double> intensity = s::cake(7);
    const std::vector<double> s0 = s::curve(25, 1.5);
    {
        ArchiveOptions options;
        options.raw_compression = RawCompression::kBslz4;
        auto archive = RunArchive::create(bslz4_path, s::run_start(), options);
        ASSERT_TRUE(archive.has_value()) << archive.error().message;
        ASSERT_TRUE(append_raw(*archive, 0, pb::ORIENTATION_P, frames[0]).has_value());
        ASSERT_TRUE(append_raw(*archive, 1, pb::ORIENTATION_N, frames[1]).has_value());
        auto bslz4 = codec::bslz4_compress(s::bytes_of(frames[2]), sizeof(std::uint16_t));
        auto lz4 = codec::lz4_compress_block(s::bytes_of(frames[3]));
        ASSERT_TRUE(bslz4.has_value() && lz4.has_value());
        auto status = archive->append_raw(s::frame_header(2, pb::FRAME_KIND_DATA, pb::ORIENTATION_P,
                                                          pb::ENCODING_BSLZ4, bslz4->size()),
                                          *bslz4);
        ASSERT_TRUE(status.has_value()) << status.error().message;
        status = archive->append_raw(s::frame_header(3, pb::FRAME_KIND_DATA, pb::ORIENTATION_N,
                                                     pb::ENCODING_LZ4, lz4->size()),
                                     *lz4);
        ASSERT_TRUE(status.has_value()) << status.error().message;
        status = archive->append_reduced(s::reduced_frame(3, pb::ORIENTATION_N), intensity, {}, {});
        ASSERT_TRUE(status.has_value()) << status.error().message;
        pb::AnalysisResult result = s::analysis_result(1.25, true);
        result.add_curves()->set_kind(pb::CURVE_KIND_S0);
        result.mutable_curves(0)->set_n_points(25);
        const std::array<std::span<const double>, 1> curves = {s0};
        status = archive->append_result(result, curves);
        ASSERT_TRUE(status.has_value()) << status.error().message;
        pb::RunEnd end;
        end.set_run_id(s::kRunId);
        end.set_reason(pb::RUN_END_REASON_COMPLETED);
        ASSERT_TRUE(archive->close(end).has_value());
    }
    {
        ArchiveOptions options;
        options.raw_compression = RawCompression::kLz4;
        auto archive = RunArchive::create(lz4_path, s::run_start(), options);
        ASSERT_TRUE(archive.has_value()) << archive.error().message;
        ASSERT_TRUE(append_raw(*archive, 0, pb::ORIENTATION_P, frames[0]).has_value());
        ASSERT_TRUE(append_raw(*archive, 1, pb::ORIENTATION_P, frames[1]).has_value());
    }  // left open: aborted

    const json dump = s::h5py_dump(dir, {bslz4_path, lz4_path});
    ASSERT_FALSE(dump.is_null());
    const json& a = dump.at(bslz4_path.string());
    EXPECT_EQ(frames_of(a), frames);
    EXPECT_EQ(a.at("/entry/data/data").at("chunk_masks"), json({2, 2, 2, 1}));
    EXPECT_EQ(a.at("/entry/data/data").at("filters"),
              json({{32008, kOptional, {0, 3, 2, 0, 2}}, {32004, kOptional, json::array()}}));
    EXPECT_EQ(a.at("/entry/data/encoding").at("value"), json({2, 2, 2, 1}));
    EXPECT_EQ(a.at("/entry/data/encoding").at("enum").at("bslz4"), 2);
    EXPECT_EQ(a.at("/entry/data/orientation").at("enum").at("N"), 2);
    EXPECT_EQ(a.at("/entry/data/orientation").at("value"), json({1, 2, 1, 2}));
    EXPECT_EQ(a.at("/entry/data/sequence").at("value"), json({0, 1, 2, 3}));
    EXPECT_EQ(a.at("/entry/instrument/detector/distance").at("value"), 0.912);
    EXPECT_EQ(a.at("/entry/instrument/detector/distance").at("attrs").at("units"), "m");
    EXPECT_EQ(a.at("/entry").at("attrs").at("NX_class"), "NXentry");
    EXPECT_EQ(a.at("/").at("attrs").at("default"), "entry");
    EXPECT_EQ(text_of(a, "/entry/run_state"), "completed");
    EXPECT_EQ(text_of(a, "/entry/definition"), "NXxrd");
    EXPECT_EQ(json::parse(text_of(a, "/entry/process/configuration")).at("composition"),
              "Zr52.5Cu17.9Ni14.6Al10Ti5");
    EXPECT_EQ(a.at("/entry/reduced").at("attrs").at("axes"), json({".", "chi", "q"}));
    EXPECT_EQ(a.at("/entry/reduced/intensity").at("shape"), json({1, s::kNChi, s::kNQ}));
    EXPECT_EQ(a.at("/entry/reduced/intensity").at("value")[0][1][2].get<double>(),
              intensity[1 * s::kNQ + 2]);
    EXPECT_TRUE(a.at("/entry/reduced/count").at("value")[0][0][0].is_null());  // NaN: not sent
    EXPECT_EQ(a.at("/entry/results/alpha").at("value"), json({1.25}));
    EXPECT_EQ(a.at("/entry/results/r_c_angstrom").at("value"), json({4.25}));
    EXPECT_EQ(a.at("/entry/results/r_c_angstrom").at("attrs").at("units"), "angstrom");
    EXPECT_EQ(a.at("/entry/results/mechanism").at("enum").at("bond-rotation"), 2);
    const std::vector<double> s0_value =
        s::json_doubles(a.at("/entry/results/s0/value").at("value"));
    ASSERT_EQ(s0_value.size(), 25U);
    EXPECT_EQ(s0_value[7], s0[25 + 7]);
    const std::vector<double> s0_variance =
        s::json_doubles(a.at("/entry/results/s0/variance").at("value"));
    ASSERT_EQ(s0_variance.size(), 25U);
    EXPECT_TRUE(std::isnan(s0_variance[0]));
    EXPECT_EQ(s0_variance[1], s0[50 + 1]);
    EXPECT_EQ(a.at("/entry/results/s0").at("attrs").at("axes"), "q");

    const json& b = dump.at(lz4_path.string());
    EXPECT_EQ(frames_of(b),
              std::vector<std::vector<std::uint16_t>>(frames.begin(), frames.begin() + 2));
    EXPECT_EQ(b.at("/entry/data/data").at("chunk_masks"), json({1, 1}));
    EXPECT_EQ(text_of(b, "/entry/run_state"), "aborted");
    EXPECT_EQ(b.at("/entry/frames_archived").at("value"), json({2, 0, 0, 0, 0}));
}

TEST(H5pyReader, SwmrReaderSeesFlushedFramesWhileTheRunGrowsThenTheCompleteFile) {
    const auto dir = testing::scratch_dir();
    const auto path = dir / "run.h5";
    std::vector<std::vector<std::uint16_t>> frames;
    for (std::uint64_t i = 0; i < 5; ++i) {
        frames.push_back(s::pixels(200 + i));
    }
    auto archive = RunArchive::create(path, s::run_start());
    ASSERT_TRUE(archive.has_value()) << archive.error().message;
    ASSERT_TRUE(append_raw(*archive, 0, pb::ORIENTATION_P, frames[0]).has_value());
    ASSERT_TRUE(append_raw(*archive, 1, pb::ORIENTATION_N, frames[1]).has_value());

    s::SwmrReader reader(path, dir);
    ASSERT_EQ(reader.read_line(), "opened") << reader.errors();
    json seen = reader.dump();
    ASSERT_FALSE(seen.is_null());
    EXPECT_EQ(frames_of(seen),
              std::vector<std::vector<std::uint16_t>>(frames.begin(), frames.begin() + 2));
    EXPECT_EQ(text_of(seen, "/entry/run_state"), "running");
    EXPECT_EQ(seen.at("/entry/results/alpha").at("shape"), json::array({0}));

    for (std::uint64_t i = 2; i < 5; ++i) {
        ASSERT_TRUE(append_raw(*archive, i, pb::ORIENTATION_P, frames[i]).has_value());
    }
    pb::AnalysisResult result = s::analysis_result(0.75, false);
    result.add_curves()->set_kind(pb::CURVE_KIND_G0);
    result.mutable_curves(0)->set_n_points(10);
    const std::vector<double> g0 = s::curve(10, 4.0);
    const std::array<std::span<const double>, 1> curves = {g0};
    ASSERT_TRUE(archive->append_result(result, curves).has_value());
    seen = reader.dump();
    ASSERT_FALSE(seen.is_null());
    EXPECT_EQ(frames_of(seen), frames);
    EXPECT_EQ(seen.at("/entry/data/sequence").at("value"), json({0, 1, 2, 3, 4}));
    EXPECT_EQ(seen.at("/entry/results/alpha").at("value"), json({0.75}));
    EXPECT_EQ(s::json_doubles(seen.at("/entry/results/g0/r").at("value")),
              std::vector<double>(g0.begin(), g0.begin() + 10));
    EXPECT_EQ(text_of(seen, "/entry/run_state"), "running");

    pb::RunEnd end;
    end.set_run_id(s::kRunId);
    end.set_reason(pb::RUN_END_REASON_COMPLETED);
    end.set_ended_unix_ns(1715941900000000000);
    end.mutable_frames_sent()->set_data_p(4);
    end.mutable_frames_sent()->set_data_n(1);
    ASSERT_TRUE(archive->close(end).has_value());
    seen = reader.dump();
    ASSERT_FALSE(seen.is_null());
    EXPECT_EQ(text_of(seen, "/entry/run_state"), "completed");
    EXPECT_EQ(text_of(seen, "/entry/end_time"), "2024-05-17T10:31:40.000000000Z");
    EXPECT_EQ(seen.at("/entry/frames_sent").at("value"), json({4, 1, 0, 0, 0}));
    EXPECT_EQ(seen.at("/entry/frames_archived").at("value"), json({4, 1, 0, 0, 0}));
    EXPECT_EQ(frames_of(seen), frames);
    EXPECT_EQ(reader.quit(), 0) << reader.errors();
}

}  // namespace
}  // namespace anisoflow::archive
