#pragma once
// `anisoflow md` (issue 7): atomistic analysis of a reference and a deformed LAMMPS
// configuration: D2_min and the local affine J per atom, g0/g2 about the loading axis (globally
// and per D2_min bin), alpha and eps_aff from the change of g2, bond breaking against D2_min with
// a linear fit, and Delta P(phi). Writes DIR/<name>.nxs and DIR/<name>_*.csv
// (docs/atomistic.md, "anisoflow md").

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace anisoflow::app {

struct MdOptions {
    /// REF.dump [DEF.dump]: with one file, both configurations are snapshots of it.
    std::vector<std::string> dumps;
    int reference_frame = 0;  ///< snapshot index in REF; negative: from the end (-1 = last)
    int deformed_frame = -1;  ///< snapshot index in DEF (or in REF when only one file is given)
    std::string axis = "z";   ///< loading axis: x, y, z or a vector "a,b,c"
    std::optional<double> cutoff;  ///< bonds and D2_min neighbours, length unit of the dump
    double cutoff_factor = 1.0;    ///< else: this multiple of the first minimum of g(r)
    double break_factor = 1.0;     ///< a bond breaks at break_factor * cutoff
    std::size_t d2min_bins = 5;
    std::string d2min_binning = "quantile";  ///< quantile or uniform
    std::optional<double> r_max;             ///< default min(10, 0.45 x smallest box width)
    double r_step = 0.02;
    double nu = 0.0;                      ///< Poisson ratio, for eps_aff
    std::optional<double> r_fit_min;      ///< default: where every r bin on holds pairs
    std::optional<double> r_fit_max;      ///< default: the last r bin centre
    std::vector<std::string> bond_types;  ///< "1-2": Delta P(phi) of those bonds only
    std::string bond_set = "own";         ///< own or tracked (docs/atomistic.md)
    std::size_t phi_bins = 18;
    std::string out_dir;
    std::string name;  ///< default: the deformed dump's file name without extension
};

CLI::App* add_md_command(CLI::App& app, MdOptions& options);
int run_md(const MdOptions& options);

}  // namespace anisoflow::app
