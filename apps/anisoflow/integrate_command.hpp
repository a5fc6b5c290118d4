#pragma once
// `anisoflow integrate`: frames + PONI -> NeXus cake file (and optional I(Q) text).

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "command_support.hpp"

namespace anisoflow::app {

struct IntegrateOptions {
    std::string poni_path;
    std::vector<std::string> frames;
    std::vector<std::string> darks;
    std::optional<double> dark_level_counts;
    std::vector<std::string> flats;
    std::string mask;
    std::size_t n_q = 1000;
    std::size_t n_chi = 72;
    std::optional<double> q_min_inv_angstrom;
    std::optional<double> q_max_inv_angstrom;
    double polarization_factor = 0.99;
    bool no_polarization = false;
    bool no_solid_angle = false;
    std::string split = "bbox";
    std::optional<double> saturation_counts;
    bool keep_negative = false;
    NoiseModelOptions noise;  ///< --variance-model etc. (docs/reduction.md "Noise models")
    unsigned threads = 0;     ///< 0: all hardware threads
    bool sum = false;
    std::string out_path;
    std::string iq_text_path;
};

/// Declares the subcommand and its flags on `app`; the options object must outlive parsing.
CLI::App* add_integrate_command(CLI::App& app, IntegrateOptions& options);

/// Runs it; returns the process exit code (0 ok, 1 on an error already reported to stderr).
int run_integrate(const IntegrateOptions& options);

}  // namespace anisoflow::app
