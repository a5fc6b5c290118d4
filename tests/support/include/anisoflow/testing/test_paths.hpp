#pragma once
// Locations tests need: the shared pyFAI references and a fresh scratch directory per test.

#include <filesystem>

namespace anisoflow::testing {

/// ../shared/reference from the project root (overridable with ANISOFLOW_SHARED_DIR at run time).
std::filesystem::path reference_dir();

/// An empty directory unique to the running test, removed and recreated on each call.
std::filesystem::path scratch_dir();

}  // namespace anisoflow::testing
