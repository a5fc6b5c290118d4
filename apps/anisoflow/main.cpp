// anisoflow: offline entry point. Each subcommand is declared and run by its own module.

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "anisoflow/core/logging.hpp"

#include "analyze_command.hpp"
#include "command_support.hpp"
#include "demo_command.hpp"
#include "integrate_command.hpp"
#include "keys_command.hpp"
#include "md_command.hpp"
#include "run_command.hpp"
#include "simulate_command.hpp"

namespace {

int run(int argc, char** argv) {
    CLI::App app{
        "anisoflow: streaming reduction and structural-anisotropy analysis of high-energy "
        "X-ray diffraction"};
    app.set_version_flag("--version", std::string("anisoflow ") + ANISOFLOW_VERSION);
    app.require_subcommand(1);
    std::string log_level = "info";
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
        ->capture_default_str();

    anisoflow::app::IntegrateOptions integrate;
    CLI::App* integrate_command = anisoflow::app::add_integrate_command(app, integrate);
    anisoflow::app::AnalyzeOptions analyze;
    CLI::App* analyze_command = anisoflow::app::add_analyze_command(app, analyze);
    anisoflow::app::SimulateOptions simulate;
    CLI::App* simulate_command = anisoflow::app::add_simulate_command(app, simulate);
    anisoflow::app::DemoOptions demo;
    CLI::App* demo_command = anisoflow::app::add_demo_command(app, demo);
    anisoflow::app::RunOptions run_control;
    CLI::App* run_command = anisoflow::app::add_run_command(app, run_control);
    anisoflow::app::MdOptions md;
    CLI::App* md_command = anisoflow::app::add_md_command(app, md);
    anisoflow::app::KeysOptions keys;
    CLI::App* keys_command = anisoflow::app::add_keys_command(app, keys);

    std::vector<std::string> arguments(argv + 1, argv + argc);
    auto with_config = anisoflow::app::arguments_with_config(arguments, *analyze_command);
    if (!with_config) {
        std::fprintf(stderr, "anisoflow: %s\n", with_config.error().message.c_str());
        return 2;
    }
    std::reverse(with_config->begin(), with_config->end());  // CLI11 takes them last first
    try {
        app.parse(*with_config);
    } catch (const CLI::ParseError& error) {
        return app.exit(error);
    }
    if (auto logging = anisoflow::configure_logging(log_level); !logging) {
        std::fprintf(stderr, "anisoflow: %s\n", logging.error().message.c_str());
        return 2;
    }
    if (integrate_command->parsed()) {
        return anisoflow::app::run_integrate(integrate);
    }
    if (analyze_command->parsed()) {
        return anisoflow::app::run_analyze(analyze);
    }
    if (simulate_command->parsed()) {
        return anisoflow::app::run_simulate(simulate);
    }
    if (demo_command->parsed()) {
        return anisoflow::app::run_demo(demo);
    }
    if (run_command->parsed()) {
        return anisoflow::app::run_run(*run_command, run_control);
    }
    if (md_command->parsed()) {
        return anisoflow::app::run_md(md);
    }
    if (keys_command->parsed()) {
        return anisoflow::app::run_keys(keys);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& error) {
        // Last resort: library code reports expected failures as Result values.
        std::fprintf(stderr, "anisoflow: unexpected failure: %s\n", error.what());
    } catch (...) {
        std::fprintf(stderr, "anisoflow: unexpected failure\n");
    }
    return 1;
}
