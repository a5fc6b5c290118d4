#pragma once
// `anisoflow demo`: the main job live. Starts anisoflow-ingest, N x anisoflow-reduce,
// anisoflow-analyze and anisoflow-archive as child processes over ipc:// sockets in one
// directory, streams a simulated run into ingest (the `simulate --stream` code, in process),
// prints every result analyze publishes, then the final result and the archive file, and stops
// the children. docs/demo.md.

#include <cstddef>
#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

namespace anisoflow::app {

struct DemoOptions {
    std::string out_dir = "anisoflow-demo";  ///< config/, logs/, runs/ and sock/ go here
    /// Directory of the anisoflow-<service> binaries; empty: next to this binary (an install),
    /// else ../../services/<service>/ from its directory (the CMake build tree).
    std::string services_dir;
    std::size_t reducers = 2;
    std::size_t reduce_threads = 1;  ///< integration threads per reduce worker
    std::size_t frames_per_orientation = 4;
    /// --distinct: the simulator renders this many frames per orientation and sends them again
    /// in turn (long runs, e.g. bench/soak.sh); 0 = every frame rendered.
    std::size_t distinct_frames = 0;
    /// --interleave: the simulator sends P and N frames alternately, not every P frame first.
    bool interleave = false;
    double fps = 5.0;
    std::size_t rows = 2048;
    std::size_t cols = 2048;
    double distance_m = 0.35;
    std::string mode = "affine";  ///< simulated strain: affine, radial, rotation or none
    double eps = 0.006;
    std::uint64_t seed = 1;
    double startup_timeout_s = 30.0;  ///< services up within this, or the demo fails
    double run_timeout_s = 300.0;     ///< final result within this after the stream started
    double stop_timeout_s = 10.0;     ///< after SIGTERM, SIGKILL when a child is still running
    /// When set: the final result (the SUMMARY.json keys of `anisoflow analyze`), the run file
    /// and every service's metrics at the end of the run, as JSON.
    std::string json_path;
    /// How the archive stores the raw frames (bslz4, lz4, none) or "off": not stored.
    std::string raw_compression = "bslz4";
    /// host:port of anisoflow-gateway (the dashboard and the JSON API); port 0: any free port.
    std::string http = "127.0.0.1:0";
    /// The dashboard's built files; empty: next to the binaries (an install) or the build tree.
    std::string dashboard_dir;
    /// Seconds the chain stays up after the final result (to look at the dashboard, or for a
    /// Prometheus server to scrape); SIGINT/SIGTERM ends it sooner.
    double linger_s = 0.0;
    unsigned recompute_ms = 1000;  ///< analyze's recompute_interval_ms
};

CLI::App* add_demo_command(CLI::App& app, DemoOptions& options);
int run_demo(const DemoOptions& options);

}  // namespace anisoflow::app
