#include "anisoflow/io/poni_file.hpp"

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "anisoflow/testing/test_paths.hpp"

namespace anisoflow::io {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
namespace fs = std::filesystem;

TEST(PoniFile, ReadsSharedReferenceGeometry) {
    const fs::path file = testing::reference_dir() / "integration" / "geometry.poni";
    auto poni = read_poni_file(file);
    ASSERT_TRUE(poni.has_value()) << poni.error().message;
    EXPECT_DOUBLE_EQ(poni->geometry.distance_m, 0.3412);
    EXPECT_DOUBLE_EQ(poni->geometry.poni1_m, 0.2011);
    EXPECT_DOUBLE_EQ(poni->geometry.wavelength_m, 1.2359e-11);
    EXPECT_EQ(poni->geometry.detector.max_shape, (FrameShape{2048, 2048}));
}

TEST(PoniFile, PrefixesErrorsWithThePath) {
    const fs::path dir = testing::scratch_dir();
    auto missing = read_poni_file(dir / "absent.poni");
    ASSERT_FALSE(missing.has_value());
    EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
    EXPECT_THAT(missing.error().message, HasSubstr("absent.poni: file not found"));

    const fs::path bad = dir / "bad.poni";
    std::ofstream(bad) << "poni_version: 2\nDetector: Detector\nDistance: not-a-number\n";
    auto parsed = read_poni_file(bad);
    ASSERT_FALSE(parsed.has_value());
    EXPECT_THAT(parsed.error().message, StartsWith(bad.string() + ": "));
}

}  // namespace
}  // namespace anisoflow::io
