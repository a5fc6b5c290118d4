// DiskRoom (lib/runtime/disk_room.hpp): the archive's full-disk hold asks it before taking from
// its feeds. Real statvfs on the test's scratch directory; the full file system is the fault
// suite's tmpfs round (tests/faults, docs/faults.md).

#include "anisoflow/runtime/disk_room.hpp"

#include <cstdint>
#include <filesystem>
#include <limits>

#include <gtest/gtest.h>

namespace anisoflow::runtime {
namespace {

namespace fs = std::filesystem;

TEST(FreeDiskBytes, IsPositiveForAWritableDirectoryAndNamesAMissingOne) {
    const auto free_bytes = free_disk_bytes(fs::temp_directory_path());
    ASSERT_TRUE(free_bytes.has_value()) << free_bytes.error().message;
    EXPECT_GT(*free_bytes, 0U);

    const fs::path missing = fs::temp_directory_path() / "anisoflow-no-such-dir" / "runs";
    const auto error = free_disk_bytes(missing);
    ASSERT_FALSE(error.has_value());
    EXPECT_NE(error.error().message.find(missing.string()), std::string::npos)
        << error.error().message;
}

TEST(DiskRoom, HoldsBelowTheReserveAndSaysWhenTheAnswerChanges) {
    const fs::path dir = fs::temp_directory_path();
    const auto free_bytes = free_disk_bytes(dir);
    ASSERT_TRUE(free_bytes.has_value());

    // More than the file system has: no room, and that is news the first time only.
    DiskRoom full(dir, std::numeric_limits<std::uint64_t>::max());
    const auto first = full.check();
    EXPECT_FALSE(first.has_room);
    EXPECT_TRUE(first.changed);
    EXPECT_GT(first.free_bytes, 0U);
    const auto second = full.check();
    EXPECT_FALSE(second.has_room);
    EXPECT_FALSE(second.changed);
    EXPECT_FALSE(full.has_room());

    // A reserve well under what is free: room, unchanged from the initial answer.
    DiskRoom roomy(dir, 1);
    const auto check = roomy.check();
    EXPECT_TRUE(check.has_room);
    EXPECT_FALSE(check.changed);
    EXPECT_TRUE(roomy.has_room());
}

TEST(DiskRoom, AZeroReserveNeverHolds) {
    DiskRoom off(fs::temp_directory_path() / "anisoflow-no-such-dir", 0);
    const auto check = off.check();
    EXPECT_TRUE(check.has_room);
    EXPECT_FALSE(check.error.has_value());
}

TEST(DiskRoom, AFailedLookCountsAsRoomAndSaysWhy) {
    // A failure to look must not hold the feeds for ever: the write then fails and is counted.
    const fs::path missing = fs::temp_directory_path() / "anisoflow-no-such-dir";
    DiskRoom room(missing, 1);
    const auto check = room.check();
    EXPECT_TRUE(check.has_room);
    ASSERT_TRUE(check.error.has_value());
    EXPECT_NE(check.error->message.find(missing.string()), std::string::npos);
}

}  // namespace
}  // namespace anisoflow::runtime
