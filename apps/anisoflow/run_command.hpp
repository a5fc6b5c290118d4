#pragma once
// `anisoflow run start|next|stop|status`: the client of ingest's run control (docs/run-control.md).
// One request, one reply; exit status 0 when the reply is ok, 1 with the reply's error (or no
// reply in time) otherwise: what a shell script, a Bluesky plan or an EPICS sequence calls.

#include <string>

#include <CLI/CLI.hpp>

#include "command_support.hpp"

namespace anisoflow::app {

struct RunOptions {
    std::string address = "tcp://127.0.0.1:5562";  ///< ingest's endpoints.run_control
    int timeout_ms = 5000;                         ///< wait for the reply this long
    bool json = false;                             ///< print the reply as JSON
    CurveOptions curve;                            ///< CURVE to a tcp run control endpoint
    // start
    std::string config_path;  ///< TOML of an ExperimentConfig (docs/run-control.md)
    std::string poni_path;    ///< PONI file: the geometry, over the TOML's
    std::string run_id;       ///< empty: ingest names the run
    // start (initial state) and next
    std::string kind;         ///< data, dark, flat or background
    std::string orientation;  ///< P or N (data)
    std::string note;
    // stop
    bool abort = false;
    std::string detail;
};

/// Declares `run` and its four subcommands; returns `run`.
CLI::App* add_run_command(CLI::App& app, RunOptions& options);
/// Runs whichever subcommand of `run` was parsed.
int run_run(const CLI::App& command, const RunOptions& options);

}  // namespace anisoflow::app
