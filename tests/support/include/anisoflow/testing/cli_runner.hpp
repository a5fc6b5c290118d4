#pragma once
// Runs the real `anisoflow` binary as a child process, as the end-to-end tests do.

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace anisoflow::testing {

struct CliRun {
    int exit_code =
        -1;  ///< -1 when the child did not exit normally (a crash is never a clean exit)
    std::string out;
    std::string err;
    std::string command;  ///< for failure messages
};

/// Runs `binary args...` with stdout and stderr captured to files in `dir` and stdin closed.
CliRun run_cli(const std::filesystem::path& binary, const std::filesystem::path& dir,
               const std::vector<std::string>& args);

/// The offline reference of the streaming tests: `anisoflow simulate --out-dir DIR/files`
/// with `simulate_options`, then `anisoflow analyze` on those files with the configuration the
/// simulator announces in its RunStart (composition, density, nu, loading axis, the flat
/// panel's noise model), writing DIR/RESULT.h5 and `summary_json` (DIR/SUMMARY.json).
struct OfflineAnalysis {
    CliRun simulated;
    CliRun analyzed;
    std::filesystem::path summary_json;
};
/// `before_analysis`, when given, runs on DIR/files between the two (e.g. to keep only some
/// frames of p.h5 and n.h5); false from it skips the analysis (its exit code stays -1).
OfflineAnalysis run_offline_analysis(
    const std::filesystem::path& cli, const std::filesystem::path& dir,
    const std::vector<std::string>& simulate_options,
    const std::function<bool(const std::filesystem::path& files)>& before_analysis = {});

/// The command, its exit code and both streams, for assertion messages.
std::string describe(const CliRun& run);

/// The whole of a text file ("" when it cannot be read).
std::string read_text(const std::filesystem::path& path);

/// a followed by b (argument lists).
std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b);

}  // namespace anisoflow::testing
