#pragma once
// `anisoflow simulate`: P/N frame sets, darks, a flat and the PONI of a simulated strained glass.

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "command_support.hpp"

namespace anisoflow::app {

struct SimulateOptions {
    std::string out_dir;  ///< empty: no files (then --stream is needed)
    /// --stream: PUSH RunStart, darks, the flat, P and N frames, RunEnd to this address
    /// (">tcp://ingest:5560" connects, "@..." binds; a bare "tcp://..." connects).
    std::string stream_address;
    double stream_fps = 10.0;   ///< --fps: frames per second on the stream; 0 = as fast as taken
    CurveOptions stream_curve;  ///< CURVE on a tcp --stream (a detector host to ingest's host)
    std::string run_id;         ///< --run-id; empty: "sim-<seed>-<unix time>"
    std::string poni_path;      ///< empty: the built-in 2048x2048 detector at 100 keV
    std::size_t rows = 2048;
    std::size_t cols = 2048;
    double distance_m = 0.35;
    std::string mode = "affine";  ///< affine, radial, rotation or none
    double eps = 0.006;           ///< affine: eps; radial: eps_aff (long range); rotation: scale
    // radial: eps(r) = eps (1 - drop / (1 + exp((r - r_c)/width))), the acceptance case.
    double radial_step_centre_angstrom = 11.0;
    double radial_step_width_angstrom = 0.5;
    double radial_inner_drop = 0.5;
    /// rotation: peak |S2| as a multiple of the affine first-order peak |S2| at the same eps.
    double rotation_amplitude = 1.0;
    double nu = 0.37;
    double loading_axis_chi_deg = 0.0;
    std::size_t frames_per_orientation = 2;
    /// --distinct: render only the first N frames per orientation and send them again in turn
    /// (a long stream at a rate the renderer cannot keep); 0 = every frame rendered.
    std::size_t distinct_frames = 0;
    /// --interleave: P and N data frames alternately (P0, N0, P1, ...), so that both
    /// orientations are under way from the start; off: every P frame, then every N frame.
    bool interleave = false;
    std::size_t dark_frames = 2;
    double counts_at_peak = 20000.0;
    std::string composition = "Zr52.5Cu17.9Ni14.6Al10Ti5";
    double density_per_cubic_angstrom = 0.0553;
    double packing_fraction = 0.55;
    double debye_waller_angstrom = 0.15;
    double dark_level_counts = 100.0;
    double read_noise_counts = 2.0;
    double polarization_factor = 0.99;
    double flat_variation = 0.02;
    bool noiseless = false;
    /// --float-frames (needs --noiseless): P, N and dark frames as float32 expected counts, not
    /// rounded or clipped, so a first-order model's S(Q, psi) < 0 reaches the analysis intact.
    bool float_frames = false;
    std::uint64_t seed = 1;
    /// --from-md REF.dump [DEF.dump]: frames of atoms instead of --mode (docs/atomistic-
    /// diffraction.md). One dump: S0 and S2 of its last snapshot; two: S0 of DEF's last snapshot
    /// and S2 its change from REF's, which removes the configuration's own l = 2 fluctuation.
    std::vector<std::string> md_dumps;
    std::string md_axis = "z";  ///< --md-axis: the loading axis in the box: x, y, z or "ax,ay,az"
    double md_q_bin = 0.05;     ///< --md-q-bin: |Q| bin width of S0/S2, 1/A
    std::size_t md_max_grid = 192;  ///< --md-grid: FFT grid points per axis (memory M^3 doubles)
    /// --md-all-snapshots: S0 and S2 of each dump averaged over all its snapshots (less speckle
    /// than one configuration), not of its last one.
    bool md_all_snapshots = false;
    /// --md-q-max: S0/S2 from the atoms up to this Q, S = 1 beyond (a single configuration's
    /// speckle is all that is left where S - 1 has died out); 0: the detector's largest Q.
    double md_q_max = 0.0;
};

CLI::App* add_simulate_command(CLI::App& app, SimulateOptions& options);
int run_simulate(const SimulateOptions& options);

}  // namespace anisoflow::app
