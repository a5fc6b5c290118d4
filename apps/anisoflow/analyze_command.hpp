#pragma once
// `anisoflow analyze` (SPEC 8): P and N frame sets -> S0/S2, g0/g2, alpha, eps_aff, r_c, eps(r),
// mechanism, written as NeXus RESULT.h5, SUMMARY.json and .gr text files.

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "command_support.hpp"

namespace anisoflow::app {

struct AnalyzeOptions {
    std::string config_path;  ///< read by arguments_with_config() before parsing
    std::string poni_path;
    std::vector<std::string> p_frames;
    std::vector<std::string> n_frames;
    std::vector<std::string> darks;
    std::vector<std::string> flats;
    std::string mask;
    std::string composition;
    double density_per_cubic_angstrom = 0.0;
    double nu = 0.0;
    double loading_axis_chi_deg = 0.0;
    std::string mode = "pn";
    std::optional<double> q_min_inv_angstrom;
    std::optional<double> q_max_inv_angstrom;
    std::optional<double> q_norm_min_inv_angstrom;
    std::string normalisation = "high-Q";  // SPEC 5: high-Q or adhoc
    double r_poly_angstrom = 0.9;          // adhoc: reach of the background polynomial
    std::size_t n_q = 1000;
    std::size_t n_chi = 72;
    double r_max_angstrom = 25.0;
    std::size_t n_r = 2000;
    double r_fit_min_angstrom = 2.3;
    double r_fit_max_angstrom = 20.0;
    double polarization_factor = 0.99;
    /// --keep-negative: keep pixels below the dark (by default excluded in that frame:
    /// reduce::DetectorCorrections::mask_negative_after_dark). Unclipped float frames of a
    /// first-order model need it: their pixels below the dark are the model's S(Q, psi) < 0,
    /// and excluding them biases S2 (`simulate --float-frames`, docs/physics-simulator.md).
    bool keep_negative = false;
    bool lorch = false;
    /// --variance-model/--read-noise/--counts-per-photon: SPEC 2's Poisson by default; the
    /// integrating model for flat panels, whose dark is an offset with read noise, not photons
    /// (docs/reduction.md "Noise models", docs/physics-fits.md "End to end").
    NoiseModelOptions noise;
    // No splitting by default: every pixel then lands in one Q bin, so the bins' noise is
    // independent, as the error propagation of SPEC 5-7 assumes. bbox shares pixels between
    // neighbouring bins, and the propagated standard errors come out ~25 % too small
    // (docs/physics-fits.md).
    std::string split = "none";
    unsigned threads = 0;
    std::string out_path;
    std::string json_path;
};

/// Declares the subcommand, its flags and `--config FILE.toml` (the same keys as the flags).
CLI::App* add_analyze_command(CLI::App& app, AnalyzeOptions& options);
int run_analyze(const AnalyzeOptions& options);

}  // namespace anisoflow::app
