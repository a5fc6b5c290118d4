// RunArchive::reopen on files a killed writer left behind (docs/archive.md, "Reopening after a
// crash"): the writer is a forked child SIGKILLed in SWMR write mode, never closing its file.

#include <array>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include "anisoflow/archive/run_archive.hpp"
#include "anisoflow/archive/run_reader.hpp"
#include "anisoflow/codec/bitshuffle.hpp"
#include "anisoflow/testing/test_paths.hpp"

#include "archive_samples.hpp"

namespace anisoflow::archive {
namespace {

using ::testing::HasSubstr;
namespace s = sample;

constexpr std::size_t kFrameBytes = std::size_t{s::kRows} * s::kCols * sizeof(std::uint16_t);

// Frame `sequence` of the tests' run: a dark first, then data frames P, N, P, ...
pb::FrameKind kind_of(std::uint64_t sequence) {
    return sequence == 0 ? pb::FRAME_KIND_DARK : pb::FRAME_KIND_DATA;
}
pb::Orientation orientation_of(std::uint64_t sequence) {
    if (sequence == 0) {
        return pb::ORIENTATION_UNSPECIFIED;
    }
    return sequence % 2 == 1 ? pb::ORIENTATION_P : pb::ORIENTATION_N;
}

Result<void> append_frame(RunArchive& archive, std::uint64_t sequence) {
    const std::vector<std::uint16_t> pixels = s::pixels(sequence);
    return archive.append_raw(s::frame_header(sequence, kind_of(sequence), orientation_of(sequence),
                                              pb::ENCODING_RAW, kFrameBytes),
                              s::bytes_of(pixels));
}

Result<void> append_cake(RunArchive& archive, std::uint64_t sequence) {
    const std::vector<double> intensity = s::cake(sequence);
    return archive.append_reduced(s::reduced_frame(sequence, orientation_of(sequence)), intensity,
                                  intensity, intensity);
}

Result<void> append_result(RunArchive& archive, double alpha, bool is_final) {
    pb::AnalysisResult result = s::analysis_result(alpha, is_final);
    result.add_curves()->set_kind(pb::CURVE_KIND_S2);
    result.mutable_curves(0)->set_n_points(10);
    const std::vector<double> values = s::curve(10, alpha);
    const std::array<std::span<const double>, 1> curves = {values};
    return archive.append_result(result, curves);
}

pb::StateChange state_change(std::uint32_t index) {
    pb::StateChange change;
    change.set_index(index);
    change.set_type(index == 0 ? pb::STATE_CHANGE_TYPE_RUN_STARTED
                               : pb::STATE_CHANGE_TYPE_STATE_SET);
    change.set_changed_unix_ns(1715941800000000000 + index);
    change.set_next_sequence(std::uint64_t{index} * 10);
    change.set_note("change " + std::to_string(index));
    return change;
}

// Runs `write` on a new archive at `path` in a child process that is then SIGKILLed with the file
// open in SWMR write mode. The child exits with code 10 + (what failed) instead.
void killed_writer(const std::filesystem::path& path,
                   const std::function<bool(RunArchive&)>& write) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        auto archive = RunArchive::create(path, s::run_start());
        if (!archive) {
            _exit(10);
        }
        if (!write(*archive)) {
            _exit(11);
        }
        raise(SIGKILL);
        _exit(12);  // not reached
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer exited with " << WEXITSTATUS(status);
    ASSERT_EQ(WTERMSIG(status), SIGKILL);
}

pb::RunEnd completed() {
    pb::RunEnd end;
    end.set_run_id(s::kRunId);
    end.set_reason(pb::RUN_END_REASON_COMPLETED);
    end.set_ended_unix_ns(1715941900000000000);
    return end;
}

TEST(RunArchiveReopen, GoesOnAppendingToTheFileOfAKilledWriter) {
    const auto path = testing::scratch_dir() / "run.h5";
    killed_writer(path, [](RunArchive& archive) {
        for (std::uint64_t sequence = 0; sequence < 5; ++sequence) {
            if (!append_frame(archive, sequence)) {
                return false;
            }
        }
        return append_cake(archive, 1) && append_cake(archive, 2) &&
               append_result(archive, 1.5, false) &&
               archive.append_state_change(s::kRunId, state_change(0));
    });
    // The killed writer's file does not open for writing as it is.
    EXPECT_FALSE(RunArchive::create(path, s::run_start()).has_value());

    auto reopened = RunArchive::reopen(path, s::kRunId);
    ASSERT_TRUE(reopened.has_value()) << reopened.error().message;
    RunArchive& archive = *reopened;
    EXPECT_EQ(archive.raw_frames(), 5U);
    EXPECT_EQ(archive.reduced_frames(), 2U);
    EXPECT_EQ(archive.results(), 1U);
    EXPECT_EQ(archive.state_changes(), 1U);
    auto sequences = archive.stored_raw_sequences();
    ASSERT_TRUE(sequences.has_value()) << sequences.error().message;
    EXPECT_EQ(*sequences, (std::vector<std::uint64_t>{0, 1, 2, 3, 4}));
    // The data frames (not the dark) and the cakes the killed writer stored: archive names the
    // data frames without a cake at the end (missing_cakes).
    auto data = archive.stored_data_sequences();
    ASSERT_TRUE(data.has_value()) << data.error().message;
    EXPECT_EQ(*data, (std::vector<std::uint64_t>{1, 2, 3, 4}));
    auto cake_sequences = archive.stored_cake_sequences();
    ASSERT_TRUE(cake_sequences.has_value()) << cake_sequences.error().message;
    EXPECT_EQ(*cake_sequences, (std::vector<std::uint64_t>{1, 2}));

    for (std::uint64_t sequence = 5; sequence < 7; ++sequence) {
        ASSERT_TRUE(append_frame(archive, sequence).has_value());
    }
    ASSERT_TRUE(append_cake(archive, 3).has_value());
    ASSERT_TRUE(append_result(archive, 2.5, true).has_value());
    // The change already stored is skipped, the next one follows it.
    ASSERT_TRUE(archive.append_state_change(s::kRunId, state_change(0)).has_value());
    ASSERT_TRUE(archive.append_state_change(s::kRunId, state_change(1)).has_value());
    auto closed = archive.close(completed());
    ASSERT_TRUE(closed.has_value()) << closed.error().message;

    s::FileReader file(path);
    ASSERT_TRUE(file.ok());
    EXPECT_EQ(file.text("/entry/run_state"), "completed");
    EXPECT_EQ(file.uints("/entry/data/sequence"),
              (std::vector<std::uint64_t>{0, 1, 2, 3, 4, 5, 6}));
    EXPECT_EQ(file.dims("/entry/data/data"), (std::vector<hsize_t>{7, s::kRows, s::kCols}));
    EXPECT_EQ(file.bytes("/entry/data/kind"), (std::vector<std::uint8_t>{2, 1, 1, 1, 1, 1, 1}));
    for (std::uint64_t row = 0; row < 7; ++row) {
        std::uint32_t mask = 0;
        const std::vector<std::byte> chunk = file.chunk("/entry/data/data", row, &mask);
        std::vector<std::uint16_t> decoded(std::size_t{s::kRows} * s::kCols);
        ASSERT_TRUE(codec::bslz4_decompress_into(chunk, sizeof(std::uint16_t),
                                                 std::as_writable_bytes(std::span(decoded)))
                        .has_value())
            << "row " << row;
        EXPECT_EQ(decoded, s::pixels(row)) << "row " << row;
    }
    // Frames archived by kind, the killed writer's included: 3 P, 3 N, 1 dark.
    EXPECT_EQ(file.uints("/entry/frames_archived"), (std::vector<std::uint64_t>{3, 3, 1, 0, 0}));
    EXPECT_EQ(file.uints("/entry/reduced/sequence"), (std::vector<std::uint64_t>{1, 2, 3}));
    std::vector<double> cakes;
    for (const std::uint64_t sequence : {1, 2, 3}) {
        const std::vector<double> cake = s::cake(sequence);
        cakes.insert(cakes.end(), cake.begin(), cake.end());
    }
    EXPECT_EQ(file.doubles("/entry/reduced/intensity"), cakes);

    auto run = read_run(path);
    ASSERT_TRUE(run.has_value()) << run.error().message;
    EXPECT_EQ(run->state, "completed");
    EXPECT_EQ(run->start.run_id(), s::kRunId);
    EXPECT_EQ(run->start.config().n_q(), s::kNQ);
    ASSERT_EQ(run->results.size(), 2U);
    EXPECT_EQ(run->results[0].alpha(), 1.5);
    EXPECT_EQ(run->results[1].alpha(), 2.5);
    EXPECT_TRUE(run->results[1].is_final());
    ASSERT_EQ(run->curves.size(), 1U);
    const std::vector<double> curve = s::curve(10, 2.5);
    ASSERT_EQ(run->curves[0].second.size(), curve.size());
    for (std::size_t i = 0; i < curve.size(); ++i) {
        const double stored = run->curves[0].second[i];
        EXPECT_TRUE(stored == curve[i] || (std::isnan(stored) && std::isnan(curve[i]))) << i;
    }
    ASSERT_EQ(run->run_log.size(), 2U);
    EXPECT_EQ(run->run_log[1].note(), "change 1");
}

// Grows `path` (a dataset of a closed or killed file) by `rows` rows of fill value, as a writer
// killed between the datasets of one record leaves it.
void grow(hid_t file, const std::string& path, hsize_t rows) {
    const hid_t dataset = H5Dopen2(file, path.c_str(), H5P_DEFAULT);
    ASSERT_GE(dataset, 0) << path;
    const hid_t space = H5Dget_space(dataset);
    std::array<hsize_t, 3> dims{};
    const int rank = H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    ASSERT_GE(rank, 1);
    dims[0] += rows;
    EXPECT_GE(H5Dset_extent(dataset, dims.data()), 0) << path;
    H5Sclose(space);
    H5Dclose(dataset);
}

TEST(RunArchiveReopen, CutsTheRecordAKilledWriterLeftTornOffEveryDatasetOfItsGroup) {
    const auto path = testing::scratch_dir() / "run.h5";
    killed_writer(path, [](RunArchive& archive) {
        return append_frame(archive, 0) && append_frame(archive, 1) && append_frame(archive, 2) &&
               append_cake(archive, 1) && append_result(archive, 1.0, false);
    });
    {
        // A fourth frame and a second cake begun but not finished (their `sequence` not grown),
        // and a result row missing its last column.
        const hid_t access = H5Pcreate(H5P_FILE_ACCESS);
        H5Pset_libver_bounds(access, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
        hbool_t clear = 1;
        H5Pset(access, "clear_status_flags", &clear);
        const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, access);
        ASSERT_GE(file, 0);
        ASSERT_GE(H5Fincrement_filesize(file, 0), 0);  // as reopen does (h5clear --increment)
        grow(file, "/entry/data/data", 1);
        grow(file, "/entry/data/kind", 1);
        grow(file, "/entry/data/orientation", 1);
        grow(file, "/entry/reduced/intensity", 1);
        grow(file, "/entry/reduced/variance", 1);
        grow(file, "/entry/results/alpha", 1);
        grow(file, "/entry/results/frames_received", 1);
        H5Fclose(file);
        H5Pclose(access);
    }
    auto reopened = RunArchive::reopen(path, s::kRunId);
    ASSERT_TRUE(reopened.has_value()) << reopened.error().message;
    EXPECT_EQ(reopened->raw_frames(), 3U);
    EXPECT_EQ(reopened->reduced_frames(), 1U);
    EXPECT_EQ(reopened->results(), 1U);
    // The next frame takes the torn one's row.
    ASSERT_TRUE(append_frame(*reopened, 3).has_value());
    ASSERT_TRUE(reopened->close(completed()).has_value());

    s::FileReader file(path);
    ASSERT_TRUE(file.ok());
    EXPECT_EQ(file.dims("/entry/data/data"), (std::vector<hsize_t>{4, s::kRows, s::kCols}));
    EXPECT_EQ(file.uints("/entry/data/sequence"), (std::vector<std::uint64_t>{0, 1, 2, 3}));
    EXPECT_EQ(file.bytes("/entry/data/kind"), (std::vector<std::uint8_t>{2, 1, 1, 1}));
    EXPECT_EQ(file.bytes("/entry/data/orientation"), (std::vector<std::uint8_t>{0, 1, 2, 1}));
    EXPECT_EQ(file.dims("/entry/reduced/intensity"), (std::vector<hsize_t>{1, s::kNChi, s::kNQ}));
    EXPECT_EQ(file.dims("/entry/reduced/variance"), (std::vector<hsize_t>{1, s::kNChi, s::kNQ}));
    EXPECT_EQ(file.dims("/entry/results/alpha"), (std::vector<hsize_t>{1}));
    EXPECT_EQ(file.dims("/entry/results/frames_received"), (std::vector<hsize_t>{1, 5}));
    std::uint32_t mask = 0;
    const std::vector<std::byte> chunk = file.chunk("/entry/data/data", 3, &mask);
    std::vector<std::uint16_t> decoded(std::size_t{s::kRows} * s::kCols);
    ASSERT_TRUE(codec::bslz4_decompress_into(chunk, sizeof(std::uint16_t),
                                             std::as_writable_bytes(std::span(decoded)))
                    .has_value());
    EXPECT_EQ(decoded, s::pixels(3));
}

// A writer that stops mid-run (SIGTERM) closes the file "interrupted" rather than "aborted": the
// run is not over, and the next writer goes on with it.
TEST(RunArchiveReopen, GoesOnWithAnInterruptedRunAndMarksItRunningAgain) {
    const auto path = testing::scratch_dir() / "interrupted.h5";
    {
        auto archive = RunArchive::create(path, s::run_start());
        ASSERT_TRUE(archive.has_value()) << archive.error().message;
        for (std::uint64_t sequence = 0; sequence < 3; ++sequence) {
            ASSERT_TRUE(append_frame(*archive, sequence).has_value());
        }
        ASSERT_TRUE(append_cake(*archive, 1).has_value());
        ASSERT_TRUE(archive->interrupt().has_value());
        // Closed: nothing more goes in, and interrupting twice is an error naming the file.
        const auto again = archive->interrupt();
        ASSERT_FALSE(again.has_value());
        EXPECT_THAT(again.error().message, HasSubstr(path.string()));
    }  // the destructor leaves an interrupted file as it is
    {
        s::FileReader file(path);
        ASSERT_TRUE(file.ok());
        EXPECT_EQ(file.text("/entry/run_state"), "interrupted");
        EXPECT_EQ(file.uints("/entry/data/sequence"), (std::vector<std::uint64_t>{0, 1, 2}));
    }
    const auto interrupted = read_run(path);
    ASSERT_TRUE(interrupted.has_value()) << interrupted.error().message;
    EXPECT_EQ(interrupted->state, "interrupted");

    auto reopened = RunArchive::reopen(path, s::kRunId);
    ASSERT_TRUE(reopened.has_value()) << reopened.error().message;
    EXPECT_EQ(reopened->raw_frames(), 3U);
    EXPECT_EQ(reopened->reduced_frames(), 1U);
    {
        s::FileReader file(path);  // SWMR readers see the run going on again
        ASSERT_TRUE(file.ok());
        EXPECT_EQ(file.text("/entry/run_state"), "running");
    }
    ASSERT_TRUE(append_frame(*reopened, 3).has_value());
    ASSERT_TRUE(append_cake(*reopened, 3).has_value());
    ASSERT_TRUE(reopened->close(completed()).has_value());

    s::FileReader file(path);
    ASSERT_TRUE(file.ok());
    EXPECT_EQ(file.text("/entry/run_state"), "completed");
    EXPECT_EQ(file.uints("/entry/data/sequence"), (std::vector<std::uint64_t>{0, 1, 2, 3}));
    EXPECT_EQ(file.uints("/entry/reduced/sequence"), (std::vector<std::uint64_t>{1, 3}));
}

TEST(RunArchiveReopen, RefusesAFinishedRunAnotherRunsFileAndAMissingFile) {
    const auto dir = testing::scratch_dir();
    const auto completed_path = dir / "completed.h5";
    {
        auto archive = RunArchive::create(completed_path, s::run_start());
        ASSERT_TRUE(archive.has_value());
        ASSERT_TRUE(archive->close(completed()).has_value());
    }
    auto refused = RunArchive::reopen(completed_path, s::kRunId);
    ASSERT_FALSE(refused.has_value());
    EXPECT_THAT(refused.error().message, HasSubstr(completed_path.string()));
    EXPECT_THAT(refused.error().message, HasSubstr("run_state is 'completed'"));

    const auto aborted_path = dir / "aborted.h5";
    {
        auto archive = RunArchive::create(aborted_path, s::run_start());
        ASSERT_TRUE(archive.has_value());
    }  // destroyed unclosed: aborted
    refused = RunArchive::reopen(aborted_path, s::kRunId);
    ASSERT_FALSE(refused.has_value());
    EXPECT_THAT(refused.error().message, HasSubstr("run_state is 'aborted'"));

    const auto killed_path = dir / "killed.h5";
    killed_writer(killed_path,
                  [](RunArchive& archive) { return append_frame(archive, 0).has_value(); });
    refused = RunArchive::reopen(killed_path, "another-run");
    ASSERT_FALSE(refused.has_value());
    EXPECT_THAT(refused.error().message, HasSubstr(killed_path.string()));
    EXPECT_THAT(refused.error().message, HasSubstr("not 'another-run'"));
    ArchiveOptions no_raw;
    no_raw.store_raw = false;
    refused = RunArchive::reopen(killed_path, s::kRunId, no_raw);
    ASSERT_FALSE(refused.has_value());
    EXPECT_THAT(refused.error().message, HasSubstr("holds raw frames"));
    ArchiveOptions bytes;
    bytes.raw_dtype = pb::PIXEL_DTYPE_UINT8;
    refused = RunArchive::reopen(killed_path, s::kRunId, bytes);
    ASSERT_FALSE(refused.has_value());
    EXPECT_THAT(refused.error().message, HasSubstr("PIXEL_DTYPE_UINT8"));
    // Refusals leave the file as it was: it still reopens.
    EXPECT_TRUE(RunArchive::reopen(killed_path, s::kRunId).has_value());

    refused = RunArchive::reopen(dir / "none.h5", s::kRunId);
    ASSERT_FALSE(refused.has_value());
    EXPECT_THAT(refused.error().message, HasSubstr((dir / "none.h5").string()));
}

}  // namespace
}  // namespace anisoflow::archive
