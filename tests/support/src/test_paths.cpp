#include "anisoflow/testing/test_paths.hpp"

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

namespace anisoflow::testing {

std::filesystem::path reference_dir() {
    if (const char* env = std::getenv("ANISOFLOW_SHARED_DIR"); env != nullptr && *env != '\0') {
        return std::filesystem::path(env) / "reference";
    }
    return std::filesystem::path(ANISOFLOW_SHARED_DIR) / "reference";
}

std::filesystem::path scratch_dir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "anisoflow-test";
    if (info != nullptr) {
        name += std::string("-") + info->test_suite_name() + "-" + info->name();
    }
    const auto dir = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

}  // namespace anisoflow::testing
