// RunArchive written to real files and read back with the HDF5 C API (docs/archive.md).

#include "anisoflow/archive/run_archive.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "anisoflow/codec/bitshuffle.hpp"
#include "anisoflow/codec/lz4.hpp"
#include "anisoflow/testing/test_paths.hpp"

#include "archive_samples.hpp"

namespace anisoflow::archive {
namespace {

using ::testing::HasSubstr;
namespace s = sample;

constexpr std::uint32_t kMaskBslz4 = 0b10;  // chunk filter masks: bit i = filter i skipped
constexpr std::uint32_t kMaskLz4 = 0b01;    // (filter 0 = bitshuffle 32008, 1 = LZ4 32004)
constexpr std::uint32_t kMaskNone = 0b11;
constexpr std::size_t kFrameBytes = std::size_t{s::kRows} * s::kCols * sizeof(std::uint16_t);

pb::RunEnd run_end(pb::RunEndReason reason) {
    pb::RunEnd end;
    end.set_run_id(s::kRunId);
    end.set_reason(reason);
    end.set_ended_unix_ns(1715941900000000000);
    end.mutable_frames_sent()->set_data_p(2);
    end.mutable_frames_sent()->set_data_n(1);
    end.mutable_frames_sent()->set_dark(1);
    if (reason == pb::RUN_END_REASON_ABORTED) {
        end.set_detail("operator stop");
    }
    return end;
}

RunArchive create(const std::filesystem::path& path, RawCompression compression) {
    ArchiveOptions options;
    options.raw_compression = compression;
    auto archive = RunArchive::create(path, s::run_start(), options);
    EXPECT_TRUE(archive.has_value()) << archive.error().message;
    return std::move(*archive);
}

Result<void> append_raw(RunArchive& archive, std::uint64_t sequence, pb::FrameKind kind,
                        pb::Orientation orientation, std::span<const std::uint16_t> pixels) {
    const auto header = s::frame_header(sequence, kind, orientation, pb::ENCODING_RAW, kFrameBytes);
    return archive.append_raw(header, s::bytes_of(pixels));
}

std::vector<std::uint16_t> decode(std::span<const std::byte> chunk, std::uint32_t mask) {
    std::vector<std::uint16_t> out(std::size_t{s::kRows} * s::kCols);
    const std::span<std::byte> bytes = std::as_writable_bytes(std::span(out));
    Result<void> status;
    if (mask == kMaskBslz4) {
        status = codec::bslz4_decompress_into(chunk, sizeof(std::uint16_t), bytes);
    } else if (mask == kMaskLz4) {
        status = codec::lz4_hdf5_decompress_into(chunk, bytes);
    } else {
        EXPECT_EQ(chunk.size(), bytes.size());
        std::copy(chunk.begin(), chunk.end(), bytes.begin());
    }
    EXPECT_TRUE(status.has_value()) << status.error().message;
    return out;
}

TEST(RunArchive, CreatesTheNexusTreeFromTheRunStart) {
    const auto path = testing::scratch_dir() / "run.h5";
    {
        RunArchive archive = create(path, RawCompression::kBslz4);
        EXPECT_TRUE(archive.is_open());
        ASSERT_TRUE(archive.close(run_end(pb::RUN_END_REASON_COMPLETED)).has_value());
        EXPECT_FALSE(archive.is_open());
    }
    s::FileReader file(path);
    ASSERT_TRUE(file.ok());
    EXPECT_EQ(file.attr_text("/", "NX_class"), "NXroot");
    EXPECT_EQ(file.attr_text("/entry", "NX_class"), "NXentry");
    EXPECT_EQ(file.attr_text("/entry/instrument/detector", "NX_class"), "NXdetector");
    EXPECT_EQ(file.attr_text("/entry/sample", "NX_class"), "NXsample");
    EXPECT_EQ(file.attr_text("/entry/process", "NX_class"), "NXprocess");
    EXPECT_EQ(file.attr_text("/entry/data", "NX_class"), "NXdata");
    EXPECT_EQ(file.text("/entry/definition"), "NXxrd");
    EXPECT_EQ(file.text("/entry/entry_identifier"), s::kRunId);
    EXPECT_EQ(file.text("/entry/start_time"), "2024-05-17T10:31:02.123456789Z");
    EXPECT_EQ(file.text("/entry/end_time"), "2024-05-17T10:31:40.000000000Z");
    EXPECT_EQ(file.text("/entry/program_name"), "anisoflow");
    EXPECT_FALSE(file.attr_text("/entry/program_name", "version").empty());
    EXPECT_EQ(file.text("/entry/run_state"), "completed");
    EXPECT_EQ(file.doubles("/entry/instrument/detector/distance"), std::vector<double>{0.912});
    EXPECT_EQ(file.attr_text("/entry/instrument/detector/distance", "units"), "m");
    EXPECT_EQ(file.doubles("/entry/instrument/detector/poni2"), std::vector<double>{0.0024});
    EXPECT_EQ(file.doubles("/entry/instrument/detector/rot2"), std::vector<double>{-0.002});
    EXPECT_EQ(file.doubles("/entry/instrument/monochromator/wavelength"),
              std::vector<double>{1.2398e-11});
    EXPECT_EQ(file.text("/entry/sample/chemical_formula"), "Zr52.5Cu17.9Ni14.6Al10Ti5");

    const auto config = nlohmann::json::parse(file.text("/entry/process/configuration"));
    EXPECT_EQ(config.at("n_q").get<int>(), static_cast<int>(s::kNQ));
    EXPECT_EQ(config.at("geometry").at("detector_cols").get<int>(), static_cast<int>(s::kCols));
    EXPECT_EQ(config.at("mode").get<std::string>(), "EXTRACTION_MODE_PN");

    EXPECT_EQ(file.dims("/entry/data/data"), (std::vector<hsize_t>{0, s::kRows, s::kCols}));
    EXPECT_EQ(file.dims("/entry/instrument/detector/data"),
              (std::vector<hsize_t>{0, s::kRows, s::kCols}));
    EXPECT_EQ(file.dims("/entry/reduced/intensity"), (std::vector<hsize_t>{0, s::kNChi, s::kNQ}));
    const std::vector<double> q = file.doubles("/entry/reduced/q");
    ASSERT_EQ(q.size(), s::kNQ);
    EXPECT_DOUBLE_EQ(q.front(), 0.5 + 1.0);  // 12 bins of 2 1/angstrom from 0.5: centres
    EXPECT_DOUBLE_EQ(q.back(), 24.5 - 1.0);
    const std::vector<double> chi = file.doubles("/entry/reduced/chi");
    ASSERT_EQ(chi.size(), s::kNChi);
    EXPECT_DOUBLE_EQ(chi.front(), -180.0 + 22.5);
    EXPECT_EQ(file.uints("/entry/frames_sent"), (std::vector<std::uint64_t>{2, 1, 1, 0, 0}));
    EXPECT_EQ(file.uints("/entry/frames_archived"), (std::vector<std::uint64_t>{0, 0, 0, 0, 0}));
}

class RawCompressionTest : public ::testing::TestWithParam<RawCompression> {};

TEST_P(RawCompressionTest, StoresRawFramesCompressedAsChunksThatDecodeExactly) {
    const auto path = testing::scratch_dir() / "run.h5";
    std::vector<std::vector<std::uint16_t>> frames;
    const std::array<pb::FrameKind, 4> kinds = {pb::FRAME_KIND_DARK, pb::FRAME_KIND_DATA,
                                                pb::FRAME_KIND_DATA, pb::FRAME_KIND_DATA};
    const std::array<pb::Orientation, 4> orientations = {
        pb::ORIENTATION_UNSPECIFIED, pb::ORIENTATION_P, pb::ORIENTATION_N, pb::ORIENTATION_P};
    {
        RunArchive archive = create(path, GetParam());
        for (std::size_t i = 0; i < kinds.size(); ++i) {
            frames.push_back(s::pixels(i + 1));
            auto status = append_raw(archive, 10 + i, kinds[i], orientations[i], frames.back());
            ASSERT_TRUE(status.has_value()) << status.error().message;
        }
        EXPECT_EQ(archive.raw_frames(), kinds.size());
        ASSERT_TRUE(archive.close(run_end(pb::RUN_END_REASON_COMPLETED)).has_value());
    }
    s::FileReader file(path);
    ASSERT_TRUE(file.ok());
    ASSERT_EQ(file.dims("/entry/data/data"),
              (std::vector<hsize_t>{kinds.size(), s::kRows, s::kCols}));
    const std::uint32_t expected_mask = GetParam() == RawCompression::kBslz4 ? kMaskBslz4
                                        : GetParam() == RawCompression::kLz4 ? kMaskLz4
                                                                             : kMaskNone;
    for (std::size_t i = 0; i < frames.size(); ++i) {
        std::uint32_t mask = 0;
        const std::vector<std::byte> chunk = file.chunk("/entry/data/data", i, &mask);
        EXPECT_EQ(mask, expected_mask) << "frame " << i;
        if (GetParam() != RawCompression::kNone) {
            EXPECT_LT(chunk.size(), kFrameBytes) << "frame " << i << " was not compressed";
        }
        EXPECT_EQ(decode(chunk, mask), frames[i]) << "frame " << i;
    }
    EXPECT_EQ(file.uints("/entry/data/sequence"), (std::vector<std::uint64_t>{10, 11, 12, 13}));
    EXPECT_EQ(file.bytes("/entry/data/kind"), (std::vector<std::uint8_t>{2, 1, 1, 1}));
    EXPECT_EQ(file.bytes("/entry/data/orientation"), (std::vector<std::uint8_t>{0, 1, 2, 1}));
    const std::uint8_t encoding = GetParam() == RawCompression::kBslz4 ? 2
                                  : GetParam() == RawCompression::kLz4 ? 1
                                                                       : 0;
    EXPECT_EQ(file.bytes("/entry/data/encoding"), std::vector<std::uint8_t>(4, encoding));
    EXPECT_EQ(file.doubles("/entry/data/exposure_s"),
              (std::vector<double>{10.5, 11.5, 12.5, 13.5}));
    EXPECT_EQ(file.ints("/entry/data/acquired_unix_ns")[3], 1715941863000013000);
    EXPECT_EQ(file.ints("/entry/data/sent_unix_ns")[0], 1715941863000010500);
    EXPECT_EQ(file.uints("/entry/frames_archived"), (std::vector<std::uint64_t>{2, 1, 1, 0, 0}));
}

// The fraction of `path`'s pages in the page cache (mincore on a read-only mapping).
double resident_fraction(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    EXPECT_GE(fd, 0) << path;
    const auto size = static_cast<std::size_t>(std::filesystem::file_size(path));
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    EXPECT_NE(map, MAP_FAILED);
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    std::vector<unsigned char> resident((size + page - 1) / page);
    EXPECT_EQ(::mincore(map, size, resident.data()), 0);
    ::munmap(map, size);
    const auto in_cache = std::count_if(resident.begin(), resident.end(),
                                        [](unsigned char r) { return (r & 1U) != 0; });
    return static_cast<double>(in_cache) / static_cast<double>(resident.size());
}

// HDF5's metadata cache keeps each dataset's chunk index as the run grows: left at HDF5's
// default (up to 32 MB) it grows with the run (docs/performance.md, "Soak"). Capped, it holds at
// most kMetadataCacheMaxBytes however many frames the run has: here enough raw frames and cakes
// that the uncapped cache would pass it.
TEST(RunArchive, MetadataCacheStaysBoundedAsTheRunGrows) {
    const auto dir = testing::scratch_dir();
    RunArchive archive = create(dir / "run.nxs", RawCompression::kNone);
    const std::vector<std::uint16_t> pixels = s::pixels(1);
    std::size_t largest = 0;
    constexpr std::uint64_t kFrames = 12000;
    for (std::uint64_t sequence = 1; sequence <= kFrames; ++sequence) {
        const pb::Orientation orientation =
            sequence % 2 == 1 ? pb::ORIENTATION_P : pb::ORIENTATION_N;
        ASSERT_TRUE(append_raw(archive, sequence, pb::FRAME_KIND_DATA, orientation, pixels));
        const std::vector<double> cake = s::cake(sequence);
        ASSERT_TRUE(
            archive.append_reduced(s::reduced_frame(sequence, orientation), cake, cake, cake));
        if (sequence % 500 == 0) {
            largest = std::max(largest, archive.metadata_cache_bytes());
        }
    }
    EXPECT_GT(largest, 0U);
    EXPECT_LE(largest, kMetadataCacheMaxBytes);
    std::printf("metadata cache after %llu frames and cakes: largest %zu bytes\n",
                static_cast<unsigned long long>(kFrames), largest);
    ASSERT_TRUE(archive.close(run_end(pb::RUN_END_REASON_COMPLETED)));
    EXPECT_EQ(archive.metadata_cache_bytes(), 0U);
}

// Raw frames go to disk and out of the page cache as the file grows (docs/archive.md, "Page
// cache"); the frames read back intact either way.
TEST(RunArchive, ReleasesWrittenRawFramesFromThePageCacheAndKeepsThemIntact) {
    constexpr std::size_t kFrames = 400;  // 300 kB of raw pixels: ~18 steps of 16 kB
    for (const bool release : {true, false}) {
        const auto path = testing::scratch_dir() / (release ? "released.h5" : "cached.h5");
        std::vector<std::vector<std::uint16_t>> frames;
        {
            ArchiveOptions options;
            options.raw_compression = RawCompression::kNone;
            options.release_written_pages = release;
            options.page_release_step_bytes = 16 * 1024;
            auto archive = RunArchive::create(path, s::run_start(), options);
            ASSERT_TRUE(archive.has_value()) << archive.error().message;
            for (std::size_t i = 0; i < kFrames; ++i) {
                frames.push_back(s::pixels(i + 1));
                ASSERT_TRUE(
                    append_raw(*archive, i, pb::FRAME_KIND_DATA, pb::ORIENTATION_P, frames.back()));
            }
            ASSERT_TRUE(archive->close(run_end(pb::RUN_END_REASON_COMPLETED)).has_value());
        }
        const double resident = resident_fraction(path);
        if (release) {
            EXPECT_LT(resident, 0.5) << "the written frames stayed in the page cache";
        } else {
            EXPECT_GT(resident, 0.9) << "a file just written should be cached (memory pressure?)";
        }
        s::FileReader file(path);
        ASSERT_TRUE(file.ok());
        for (std::size_t i = 0; i < kFrames; i += 37) {
            std::uint32_t mask = 0;
            EXPECT_EQ(decode(file.chunk("/entry/data/data", i, &mask), mask), frames[i])
                << "frame " << i;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Options, RawCompressionTest,
                         ::testing::Values(RawCompression::kLz4, RawCompression::kBslz4,
                                           RawCompression::kNone));

TEST(RunArchive, StoresPrecompressedBslz4PayloadsByteForByte) {
    const auto path = testing::scratch_dir() / "run.h5";
    const std::vector<std::uint16_t> pixels = s::pixels(42);
    auto payload = codec::bslz4_compress(s::bytes_of(pixels), sizeof(std::uint16_t));
    ASSERT_TRUE(payload.has_value());
    {
        // The archive's own choice (LZ4) does not apply: the DECTRIS payload keeps its format.
        RunArchive archive = create(path, RawCompression::kLz4);
        const auto header = s::frame_header(3, pb::FRAME_KIND_DATA, pb::ORIENTATION_P,
                                            pb::ENCODING_BSLZ4, payload->size());
        auto status = archive.append_raw(header, *payload);
        ASSERT_TRUE(status.has_value()) << status.error().message;
        ASSERT_TRUE(archive.close(run_end(pb::RUN_END_REASON_COMPLETED)).has_value());
    }
    s::FileReader file(path);
    std::uint32_t mask = 0;
    const std::vector<std::byte> chunk = file.chunk("/entry/data/data", 0, &mask);
    EXPECT_EQ(mask, kMaskBslz4);
    EXPECT_EQ(chunk, *payload);
    EXPECT_EQ(decode(chunk, mask), pixels);
    EXPECT_EQ(file.bytes("/entry/data/encoding"), std::vector<std::uint8_t>{2});
}

TEST(RunArchive, WrapsPlainLz4BlocksWithoutRecompressingAndKeepsHdf5Framing) {
    const auto path = testing::scratch_dir() / "run.h5";
    const std::vector<std::uint16_t> first = s::pixels(5);
    const std::vector<std::uint16_t> second = s::pixels(6);
    auto block = codec::lz4_compress_block(s::bytes_of(first));
    auto framed = codec::lz4_hdf5_compress(s::bytes_of(second), 256);  // several blocks
    ASSERT_TRUE(block.has_value() && framed.has_value());
    {
        RunArchive archive = create(path, RawCompression::kBslz4);
        auto status = archive.append_raw(s::frame_header(0, pb::FRAME_KIND_DATA, pb::ORIENTATION_P,
                                                         pb::ENCODING_LZ4, block->size()),
                                         *block);
        ASSERT_TRUE(status.has_value()) << status.error().message;
        status = archive.append_raw(s::frame_header(1, pb::FRAME_KIND_DATA, pb::ORIENTATION_N,
                                                    pb::ENCODING_LZ4, framed->size()),
                                    *framed);
        ASSERT_TRUE(status.has_value()) << status.error().message;
        ASSERT_TRUE(archive.close(run_end(pb::RUN_END_REASON_COMPLETED)).has_value());
    }
    s::FileReader file(path);
    std::uint32_t mask = 0;
    const std::vector<std::byte> wrapped = file.chunk("/entry/data/data", 0, &mask);
    EXPECT_EQ(mask, kMaskLz4);
    ASSERT_EQ(wrapped.size(), block->size() + 16);  // 12-byte header + 4-byte block size
    EXPECT_TRUE(std::equal(block->begin(), block->end(), wrapped.begin() + 16));
    EXPECT_EQ(decode(wrapped, mask), first);
    const std::vector<std::byte> kept = file.chunk("/entry/data/data", 1, &mask);
    EXPECT_EQ(mask, kMaskLz4);
    EXPECT_EQ(kept, *framed);
    EXPECT_EQ(decode(kept, mask), second);
}

TEST(RunArchive, RejectsFramesThatDisagreeWithTheRunAndKeepsEarlierFrames) {
    const auto path = testing::scratch_dir() / "run.h5";
    const std::vector<std::uint16_t> good = s::pixels(1);
    const std::vector<std::uint16_t> later = s::pixels(2);
    {
        RunArchive archive = create(path, RawCompression::kBslz4);
        ASSERT_TRUE(append_raw(archive, 0, pb::FRAME_KIND_DATA, pb::ORIENTATION_P, good));

        const auto expect_error = [&](const pb::FrameHeader& header,
                                      std::span<const std::byte> payload,
                                      const std::string& needle) {
            auto status = archive.append_raw(header, payload);
            ASSERT_FALSE(status.has_value()) << needle;
            EXPECT_THAT(status.error().message, HasSubstr(path.string()));
            EXPECT_THAT(status.error().message, HasSubstr(needle));
        };
        const auto base = s::frame_header(1, pb::FRAME_KIND_DATA, pb::ORIENTATION_P,
                                          pb::ENCODING_RAW, kFrameBytes);
        const auto bytes = s::bytes_of(good);
        auto header = base;
        header.set_rows(s::kRows + 1);
        expect_error(header, bytes, "17 x 24 pixels but /entry/data/data holds the run's 16 x 24");
        header = base;
        header.set_dtype(pb::PIXEL_DTYPE_UINT32);
        header.set_uncompressed_size_bytes(2 * kFrameBytes);
        expect_error(header, bytes, "dtype PIXEL_DTYPE_UINT32 but /entry/data/data holds");
        header = base;
        header.set_payload_size_bytes(kFrameBytes + 1);
        expect_error(header, bytes, "declares a payload of 769 bytes but 768 bytes arrived");
        header = base;
        header.set_payload_size_bytes(kFrameBytes - 2);
        expect_error(header, bytes.first(kFrameBytes - 2), "RAW frame 1 holds 766 bytes");
        header = base;
        header.set_run_id("another-run");
        expect_error(header, bytes, "frame of run 'another-run'");
        header = base;
        header.set_orientation(pb::ORIENTATION_UNSPECIFIED);
        expect_error(header, bytes, "a DATA frame an orientation");
        header = base;
        header.set_encoding(pb::ENCODING_BSLZ4);
        expect_error(header, bytes, "does not start with a bslz4 header");

        ASSERT_TRUE(append_raw(archive, 2, pb::FRAME_KIND_DATA, pb::ORIENTATION_N, later));
        EXPECT_EQ(archive.raw_frames(), 2U);
        ASSERT_TRUE(archive.close(run_end(pb::RUN_END_REASON_COMPLETED)).has_value());
    }
    s::FileReader file(path);
    EXPECT_EQ(file.dims("/entry/data/data"), (std::vector<hsize_t>{2, s::kRows, s::kCols}));
    EXPECT_EQ(file.uints("/entry/data/sequence"), (std::vector<std::uint64_t>{0, 2}));
    for (std::size_t i = 0; i < 2; ++i) {
        std::uint32_t mask = 0;
        const std::vector<std::byte> chunk = file.chunk("/entry/data/data", i, &mask);
        EXPECT_EQ(decode(chunk, mask), i == 0 ? good : later);
    }
}

TEST(RunArchive, StoresAFloatFlatInTheDetectorsFlatfieldBesideIntegerFrames) {
    // A computed flat (float32) is no frame of the detector's uint16 type: NXdetector/flatfield.
    const auto path = testing::scratch_dir() / "flat.h5";
    std::vector<float> flat(std::size_t{s::kRows} * s::kCols);
    for (std::size_t i = 0; i < flat.size(); ++i) {
        flat[i] = 0.9F + 0.001F * static_cast<float>(i % 200);
    }
    {
        RunArchive archive = create(path, RawCompression::kBslz4);
        ASSERT_TRUE(
            append_raw(archive, 0, pb::FRAME_KIND_DARK, pb::ORIENTATION_UNSPECIFIED, s::pixels(1)));
        auto header = s::frame_header(1, pb::FRAME_KIND_FLAT, pb::ORIENTATION_UNSPECIFIED,
                                      pb::ENCODING_RAW, flat.size() * sizeof(float));
        header.set_dtype(pb::PIXEL_DTYPE_FLOAT32);
        const std::span<const std::byte> bytes(
            reinterpret_cast<const std::byte*>(flat.data()),  // NOLINT: the floats' bytes
            flat.size() * sizeof(float));
        ASSERT_TRUE(archive.append_raw(header, bytes).has_value());
        // A float frame of another kind is still refused.
        header.set_kind(pb::FRAME_KIND_DARK);
        EXPECT_FALSE(archive.append_raw(header, bytes).has_value());
        EXPECT_EQ(archive.raw_frames(), 1U);
        EXPECT_EQ(archive.flat_fields(), 1U);
        ASSERT_TRUE(archive.close(run_end(pb::RUN_END_REASON_COMPLETED)).has_value());
    }
    s::FileReader file(path);
    EXPECT_EQ(file.dims("/entry/instrument/detector/flatfield"),
              (std::vector<hsize_t>{1, s::kRows, s::kCols}));
    EXPECT_EQ(file.uints("/entry/instrument/detector/flatfield_sequence"),
              (std::vector<std::uint64_t>{1}));
    const std::vector<double> stored = file.doubles("/entry/instrument/detector/flatfield");
    ASSERT_EQ(stored.size(), flat.size());
    for (std::size_t i = 0; i < flat.size(); ++i) {
        ASSERT_EQ(stored[i], static_cast<double>(flat[i])) << i;
    }
    // The flat counts as archived: frames_archived columns data_p, data_n, dark, flat, bg.
    EXPECT_EQ(file.uints("/entry/frames_archived"), (std::vector<std::uint64_t>{0, 0, 1, 1, 0}));
}

TEST(RunArchive, ReportsAMissingDirectoryAndNeverReplacesAnExistingFile) {
    const auto dir = testing::scratch_dir();
    auto missing = RunArchive::create(dir / "no-such-dir" / "run.h5", s::run_start());
    ASSERT_FALSE(missing.has_value());
    EXPECT_EQ(missing.error().code, ErrorCode::kIo);
    EXPECT_THAT(missing.error().message, HasSubstr((dir / "no-such-dir" / "run.h5").string()));
    EXPECT_THAT(missing.error().message, HasSubstr("does not exist"));

    const auto existing = dir / "existing.h5";
    std::ofstream(existing) << "an earlier run";
    auto refused = RunArchive::create(existing, s::run_start());
    ASSERT_FALSE(refused.has_value());
    EXPECT_THAT(refused.error().message, HasSubstr("file exists"));
    EXPECT_EQ(std::filesystem::file_size(existing), 14U);

    ArchiveOptions overwrite;
    overwrite.overwrite = true;
    auto replaced = RunArchive::create(existing, s::run_start(), overwrite);
    EXPECT_TRUE(replaced.has_value());
}

TEST(RunArchive, RejectsARunStartWithoutADetectorShape) {
    pb::RunStart start = s::run_start();
    start.mutable_config()->mutable_geometry()->set_detector_rows(0);
    const auto path = testing::scratch_dir() / "run.h5";
    auto archive = RunArchive::create(path, start);
    ASSERT_FALSE(archive.has_value());
    EXPECT_THAT(archive.error().message, HasSubstr("0 x 24 pixels"));
    EXPECT_FALSE(std::filesystem::exists(path));

    ArchiveOptions no_raw;
    no_raw.store_raw = false;
    auto without_raw = RunArchive::create(path, start, no_raw);
    ASSERT_TRUE(without_raw.has_value()) << without_raw.error().message;
    const std::vector<std::uint16_t> pixels = s::pixels(1);
    auto status = append_raw(*without_raw, 0, pb::FRAME_KIND_DATA, pb::ORIENTATION_P, pixels);
    ASSERT_FALSE(status.has_value());
    EXPECT_THAT(status.error().message, HasSubstr("store_raw"));
}

TEST(RunArchive, StoresCakesWithTheirMetadata) {
    const auto path = testing::scratch_dir() / "run.h5";
    const std::vector<double> intensity = s::cake(1);
    const std::vector<double> variance = s::cake(2);
    const std::vector<double> count = s::cake(3);
    const std::vector<double> second = s::cake(4);
    {
        RunArchive archive = create(path, RawCompression::kBslz4);
        auto status = archive.append_reduced(s::reduced_frame(4, pb::ORIENTATION_P), intensity,
                                             variance, count);
        ASSERT_TRUE(status.has_value()) << status.error().message;

        pb::ReducedFrame wrong = s::reduced_frame(5, pb::ORIENTATION_N);
        wrong.set_n_q(s::kNQ + 1);
        status = archive.append_reduced(wrong, intensity, variance, count);
        ASSERT_FALSE(status.has_value());
        EXPECT_THAT(status.error().message, HasSubstr("8 chi x 13 Q bins"));
        wrong = s::reduced_frame(5, pb::ORIENTATION_N);
        wrong.mutable_q_axis()->set_upper(30.0);
        status = archive.append_reduced(wrong, intensity, variance, count);
        ASSERT_FALSE(status.has_value());
        EXPECT_THAT(status.error().message, HasSubstr("/entry/reduced/q"));
        status = archive.append_reduced(s::reduced_frame(5, pb::ORIENTATION_N), intensity,
                                        std::span(variance).first(10), count);
        ASSERT_FALSE(status.has_value());
        EXPECT_THAT(status.error().message, HasSubstr("variance has 10 values"));
        status =
            archive.append_reduced(s::reduced_frame(5, pb::ORIENTATION_N), {}, variance, count);
        ASSERT_FALSE(status.has_value());

        // Only intensity sent: variance and count are NaN.
        status = archive.append_reduced(s::reduced_frame(9, pb::ORIENTATION_N), second, {}, {});
        ASSERT_TRUE(status.has_value()) << status.error().message;
        EXPECT_EQ(archive.reduced_frames(), 2U);
    }  // never closed: the destructor closes it as aborted
    s::FileReader file(path);
    EXPECT_EQ(file.text("/entry/run_state"), "aborted");
    EXPECT_EQ(file.text("/entry/end_time"), "");
    ASSERT_EQ(file.dims("/entry/reduced/intensity"), (std::vector<hsize_t>{2, s::kNChi, s::kNQ}));
    std::vector<double> expected = intensity;
    expected.insert(expected.end(), second.begin(), second.end());
    EXPECT_EQ(file.doubles("/entry/reduced/intensity"), expected);
    const std::vector<double> variances = file.doubles("/entry/reduced/variance");
    EXPECT_TRUE(std::equal(variance.begin(), variance.end(), variances.begin()));
    EXPECT_TRUE(std::all_of(variances.begin() + static_cast<std::ptrdiff_t>(variance.size()),
                            variances.end(), [](double v) { return std::isnan(v); }));
    EXPECT_EQ(file.doubles("/entry/reduced/count")[5], count[5]);
    EXPECT_EQ(file.uints("/entry/reduced/sequence"), (std::vector<std::uint64_t>{4, 9}));
    EXPECT_EQ(file.bytes("/entry/reduced/orientation"), (std::vector<std::uint8_t>{1, 2}));
    EXPECT_EQ(file.uints("/entry/reduced/frames_accumulated"), (std::vector<std::uint64_t>{5, 10}));
}

TEST(RunArchive, AppendsResultRowsAndRewritesTheLatestCurves) {
    const auto path = testing::scratch_dir() / "run.h5";
    const std::vector<double> s0_first = s::curve(30, 1.0);
    const std::vector<double> g2_first = s::curve(40, 2.0);
    const std::vector<double> s0_second = s::curve(20, 3.0);  // fewer points: the curve shrinks
    {
        RunArchive archive = create(path, RawCompression::kBslz4);
        pb::AnalysisResult first = s::analysis_result(1.5, false);
        first.add_curves()->set_kind(pb::CURVE_KIND_S0);
        first.mutable_curves(0)->set_n_points(30);
        first.add_curves()->set_kind(pb::CURVE_KIND_G2);
        first.mutable_curves(1)->set_n_points(40);
        const std::array<std::span<const double>, 2> first_curves = {s0_first, g2_first};
        auto status = archive.append_result(first, first_curves);
        ASSERT_TRUE(status.has_value()) << status.error().message;

        pb::AnalysisResult second = s::analysis_result(2.5, true);
        second.add_curves()->set_kind(pb::CURVE_KIND_S0);
        second.mutable_curves(0)->set_n_points(20);
        const std::array<std::span<const double>, 1> bad = {s0_first};
        status = archive.append_result(second, bad);
        ASSERT_FALSE(status.has_value());
        EXPECT_THAT(status.error().message, HasSubstr("declares 20 points"));
        status = archive.append_result(second, {});
        ASSERT_FALSE(status.has_value());
        EXPECT_THAT(status.error().message, HasSubstr("declares 1 curves but 0 were given"));
        const std::array<std::span<const double>, 1> second_curves = {s0_second};
        status = archive.append_result(second, second_curves);
        ASSERT_TRUE(status.has_value()) << status.error().message;
        EXPECT_EQ(archive.results(), 2U);
        ASSERT_TRUE(archive.close(run_end(pb::RUN_END_REASON_ABORTED)).has_value());
        status = archive.append_result(second, second_curves);
        ASSERT_FALSE(status.has_value());
        EXPECT_THAT(status.error().message, HasSubstr("closed"));
    }
    s::FileReader file(path);
    EXPECT_EQ(file.text("/entry/run_state"), "aborted");
    EXPECT_EQ(file.text("/entry/run_end_detail"), "operator stop");
    EXPECT_EQ(file.doubles("/entry/results/alpha"), (std::vector<double>{1.5, 2.5}));
    EXPECT_EQ(file.doubles("/entry/results/alpha_full_range_stderr"),
              (std::vector<double>{1.5 / 40.0, 2.5 / 40.0}));
    const std::vector<double> r_c = file.doubles("/entry/results/r_c_angstrom");
    ASSERT_EQ(r_c.size(), 2U);
    EXPECT_TRUE(std::isnan(r_c[0]));  // absent in the first result
    EXPECT_EQ(r_c[1], 4.25);
    EXPECT_EQ(file.bytes("/entry/results/mechanism"), (std::vector<std::uint8_t>{4, 2}));
    EXPECT_EQ(file.bytes("/entry/results/is_final"), (std::vector<std::uint8_t>{0, 1}));
    EXPECT_EQ(file.uints("/entry/results/frames_p"), (std::vector<std::uint64_t>{1, 2}));
    EXPECT_EQ(file.uints("/entry/results/s2_dof"), (std::vector<std::uint64_t>{11, 11}));
    EXPECT_EQ(file.uints("/entry/results/frames_received"),
              (std::vector<std::uint64_t>{1, 1, 1, 0, 0, 2, 2, 1, 0, 0}));
    EXPECT_EQ(file.dims("/entry/results/written_unix_ns"), std::vector<hsize_t>{2});

    const auto column = [](const std::vector<double>& curve, std::size_t index) {
        const std::size_t n = curve.size() / 3;
        return std::vector<double>(curve.begin() + static_cast<std::ptrdiff_t>(index * n),
                                   curve.begin() + static_cast<std::ptrdiff_t>((index + 1) * n));
    };
    EXPECT_EQ(file.doubles("/entry/results/s0/q"), column(s0_second, 0));
    EXPECT_EQ(file.doubles("/entry/results/s0/value"), column(s0_second, 1));
    EXPECT_EQ(file.ints("/entry/results/s0/result_row"), std::vector<std::int64_t>{1});
    EXPECT_EQ(file.doubles("/entry/results/g2/r"), column(g2_first, 0));
    EXPECT_EQ(file.doubles("/entry/results/g2/value"), column(g2_first, 1));
    EXPECT_EQ(file.ints("/entry/results/g2/result_row"), std::vector<std::int64_t>{0});
    EXPECT_EQ(file.dims("/entry/results/g0/value"), std::vector<hsize_t>{0});
    EXPECT_EQ(file.ints("/entry/results/g0/result_row"), std::vector<std::int64_t>{-1});
}

pb::StateChange state_change(std::uint32_t index, pb::StateChangeType type, pb::FrameKind kind,
                             pb::Orientation orientation, std::string note) {
    pb::StateChange change;
    change.set_index(index);
    change.set_type(type);
    change.set_changed_unix_ns(1715941800000000000 + index);
    change.set_kind(kind);
    change.set_orientation(orientation);
    change.set_next_sequence(index * 10);
    change.set_note(std::move(note));
    return change;
}

TEST(RunArchive, WritesTheRunLogLiveAndCompletesItFromRunEnd) {
    const auto path = testing::scratch_dir() / "run.h5";
    const std::vector<pb::StateChange> log = {
        state_change(0, pb::STATE_CHANGE_TYPE_RUN_STARTED, pb::FRAME_KIND_UNSPECIFIED,
                     pb::ORIENTATION_UNSPECIFIED, "Cu50Zr50"),
        state_change(1, pb::STATE_CHANGE_TYPE_STATE_SET, pb::FRAME_KIND_DATA, pb::ORIENTATION_P,
                     "omega 0"),
        state_change(2, pb::STATE_CHANGE_TYPE_STATE_SET, pb::FRAME_KIND_DATA, pb::ORIENTATION_N,
                     std::string(300, 'n')),  // longer than the column: cut
        state_change(3, pb::STATE_CHANGE_TYPE_RUN_ENDED, pb::FRAME_KIND_DATA, pb::ORIENTATION_N,
                     "done")};
    {
        RunArchive archive = create(path, RawCompression::kBslz4);
        // Live events: the first two; a gap is refused, a repeat is skipped.
        ASSERT_TRUE(archive.append_state_change(s::kRunId, log[0]).has_value());
        ASSERT_TRUE(archive.append_state_change(s::kRunId, log[1]).has_value());
        ASSERT_TRUE(archive.append_state_change(s::kRunId, log[1]).has_value());
        auto gap = archive.append_state_change(s::kRunId, log[3]);
        ASSERT_FALSE(gap.has_value());
        EXPECT_THAT(gap.error().message, HasSubstr("state change 3"));
        auto other = archive.append_state_change("another-run", log[2]);
        ASSERT_FALSE(other.has_value());
        EXPECT_EQ(archive.state_changes(), 2U);
        // RunEnd carries the whole log: the rest is written at close.
        pb::RunEnd end = run_end(pb::RUN_END_REASON_COMPLETED);
        for (const pb::StateChange& change : log) {
            *end.add_state_changes() = change;
        }
        ASSERT_TRUE(archive.close(end).has_value());
        EXPECT_EQ(archive.state_changes(), 4U);
    }
    s::FileReader file(path);
    EXPECT_EQ(file.bytes("/entry/run_log/change"), (std::vector<std::uint8_t>{1, 2, 2, 5}));
    EXPECT_EQ(file.bytes("/entry/run_log/kind"), (std::vector<std::uint8_t>{0, 1, 1, 1}));
    EXPECT_EQ(file.bytes("/entry/run_log/orientation"), (std::vector<std::uint8_t>{0, 1, 2, 2}));
    EXPECT_EQ(file.uints("/entry/run_log/next_sequence"),
              (std::vector<std::uint64_t>{0, 10, 20, 30}));
    EXPECT_EQ(file.ints("/entry/run_log/changed_unix_ns"),
              (std::vector<std::int64_t>{1715941800000000000, 1715941800000000001,
                                         1715941800000000002, 1715941800000000003}));
    const std::vector<std::string> notes = file.texts("/entry/run_log/note");
    ASSERT_EQ(notes.size(), 4U);
    EXPECT_EQ(notes[1], "omega 0");
    EXPECT_EQ(notes[2], std::string(256, 'n'));
    EXPECT_EQ(notes[3], "done");
    EXPECT_EQ(file.attr_text("/entry/run_log", "NX_class"), "NXcollection");
}

TEST(RunArchive, ReportsAFullDiskAndGoesOnWhenSpaceReturns) {
    // A file size limit (RLIMIT_FSIZE) makes writes fail as a full disk does. It applies to the
    // whole process, so the writer runs in a child that reports through its exit code and a file.
    const auto dir = testing::scratch_dir();
    const auto path = dir / "run.h5";
    const auto report = dir / "error.txt";
    const std::vector<std::uint16_t> before = s::pixels(1);
    const std::vector<std::uint16_t> after = s::pixels(2);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        signal(SIGXFSZ, SIG_IGN);  // a write past the limit fails with EFBIG instead of killing
        ArchiveOptions options;
        options.raw_compression = RawCompression::kNone;  // 768 bytes a frame, predictable
        auto archive = RunArchive::create(path, s::run_start(), options);
        if (!archive || !append_raw(*archive, 0, pb::FRAME_KIND_DATA, pb::ORIENTATION_P, before)) {
            _exit(10);
        }
        rlimit limit{};
        getrlimit(RLIMIT_FSIZE, &limit);
        const rlimit unlimited = limit;
        limit.rlim_cur = std::filesystem::file_size(path);  // no room for another frame
        setrlimit(RLIMIT_FSIZE, &limit);
        std::uint64_t sequence = 1;
        Result<void> status;
        for (; sequence < 8 && status; ++sequence) {
            status = append_raw(*archive, sequence, pb::FRAME_KIND_DATA, pb::ORIENTATION_P, after);
        }
        if (status) {
            _exit(11);  // the limit never bit
        }
        std::ofstream(report) << status.error().message;
        setrlimit(RLIMIT_FSIZE, &unlimited);  // space freed
        if (!append_raw(*archive, 99, pb::FRAME_KIND_DATA, pb::ORIENTATION_N, after) ||
            !archive->close(run_end(pb::RUN_END_REASON_COMPLETED))) {
            _exit(12);
        }
        _exit(0);
    }
    int wait_status = 0;
    ASSERT_EQ(waitpid(child, &wait_status, 0), child);
    ASSERT_TRUE(WIFEXITED(wait_status));
    ASSERT_EQ(WEXITSTATUS(wait_status), 0);
    std::ifstream in(report);
    const std::string message((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
    EXPECT_THAT(message, HasSubstr(path.string()));
    EXPECT_THAT(message, HasSubstr("/entry/"));

    s::FileReader file(path);
    ASSERT_TRUE(file.ok());
    EXPECT_EQ(file.text("/entry/run_state"), "completed");
    const std::vector<std::uint64_t> sequence = file.uints("/entry/data/sequence");
    ASSERT_GE(sequence.size(), 2U);
    EXPECT_EQ(sequence.front(), 0U);
    EXPECT_EQ(sequence.back(), 99U);
    for (std::size_t i = 0; i < sequence.size(); ++i) {
        std::uint32_t mask = 0;
        const std::vector<std::byte> chunk = file.chunk("/entry/data/data", i, &mask);
        EXPECT_EQ(decode(chunk, mask), i == 0 ? before : after) << "row " << i;
    }
}

}  // namespace
}  // namespace anisoflow::archive
