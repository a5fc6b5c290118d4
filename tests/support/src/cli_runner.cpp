#include "anisoflow/testing/cli_runner.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <sys/wait.h>

namespace anisoflow::testing {
namespace {

std::string shell_quote(const std::string& arg) {
    std::string quoted = "'";
    for (const char c : arg) {
        quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return quoted + "'";
}

}  // namespace

std::string read_text(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

CliRun run_cli(const std::filesystem::path& binary, const std::filesystem::path& dir,
               const std::vector<std::string>& args) {
    static int serial = 0;
    const std::string stem = "cli-" + std::to_string(serial++);
    const std::filesystem::path out = dir / (stem + ".stdout");
    const std::filesystem::path err = dir / (stem + ".stderr");
    CliRun run;
    run.command = shell_quote(binary.string());
    for (const auto& arg : args) {
        run.command += " " + shell_quote(arg);
    }
    const std::string shell = run.command + " >" + shell_quote(out.string()) + " 2>" +
                              shell_quote(err.string()) + " </dev/null";
    const int status = std::system(shell.c_str());  // NOLINT(cert-env33-c,concurrency-mt-unsafe):
                                                    // the test's own binary, one at a time
    if (status != -1 && WIFEXITED(status)) {
        run.exit_code = WEXITSTATUS(status);
    }
    run.out = read_text(out);
    run.err = read_text(err);
    return run;
}

std::string describe(const CliRun& run) {
    return "command: " + run.command + "\nexit code: " + std::to_string(run.exit_code) +
           "\n--- stdout ---\n" + run.out + "--- stderr ---\n" + run.err;
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

OfflineAnalysis run_offline_analysis(
    const std::filesystem::path& cli, const std::filesystem::path& dir,
    const std::vector<std::string>& simulate_options,
    const std::function<bool(const std::filesystem::path& files)>& before_analysis) {
    const std::filesystem::path files = dir / "files";
    OfflineAnalysis offline;
    offline.summary_json = dir / "SUMMARY.json";
    offline.simulated = run_cli(
        cli, dir,
        concat({"--log-level", "warn", "simulate", "--out-dir", files.string()}, simulate_options));
    if (offline.simulated.exit_code != 0 || (before_analysis && !before_analysis(files))) {
        return offline;
    }
    offline.analyzed = run_cli(cli, dir,
                               {"--log-level",
                                "warn",
                                "analyze",
                                "--poni",
                                (files / "geometry.poni").string(),
                                "--p",
                                (files / "p.h5").string(),
                                "--n",
                                (files / "n.h5").string(),
                                "--dark",
                                (files / "dark.h5").string(),
                                "--flat",
                                (files / "flat.h5").string(),
                                "--composition",
                                "Zr52.5Cu17.9Ni14.6Al10Ti5",
                                "--density",
                                "0.0553",
                                "--nu",
                                "0.37",
                                "--loading-axis-chi",
                                "0",
                                "--variance-model",
                                "integrating",
                                "--out",
                                (dir / "RESULT.h5").string(),
                                "--json",
                                offline.summary_json.string()});
    return offline;
}

}  // namespace anisoflow::testing
