// `anisoflow md`: atomistic analysis of LAMMPS dumps to NeXus and CSV (issue 7).

#include "md_command.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anisoflow/atomistic/bonds.hpp"
#include "anisoflow/atomistic/d2min.hpp"
#include "anisoflow/atomistic/lammps_dump.hpp"
#include "anisoflow/atomistic/pair_distribution.hpp"
#include "anisoflow/hdf5/handle.hpp"
#include "anisoflow/physics/affine_fit.hpp"

namespace anisoflow::app {

namespace {

namespace fs = std::filesystem;
using atomistic::Vec3;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Default histogram reach: 10 length units (angstrom), but below the minimum image limit of the
// cell lists (half the smallest box width) with a margin.
constexpr double kDefaultRMax = 10.0;
constexpr double kRMaxWidthFraction = 0.45;
// Bin width of the g(r) whose first minimum sets the default cutoff, in mean atomic spacings.
constexpr double kMinimumStepSpacings = 0.04;
// The terminal summary quotes Delta P in the first and the last phi bin (along and across).
constexpr std::string_view kNormalisation =
    "paper: g(r, psi) = g0(r) + sqrt5 g2(r) P2(cos psi), psi to the loading axis (SPEC 4)";
constexpr std::string_view kOrientationNormalisation =
    "per unit solid angle: P_k = n_k / (N (cos phi_k - cos phi_k+1)), 1 for isotropic bonds";

int report(const Error& error) {
    std::fprintf(stderr, "anisoflow md: %s\n", error.message.c_str());
    return 1;
}

Result<Vec3> parse_axis(const std::string& text) {
    if (text == "x" || text == "X") {
        return Vec3{1.0, 0.0, 0.0};
    }
    if (text == "y" || text == "Y") {
        return Vec3{0.0, 1.0, 0.0};
    }
    if (text == "z" || text == "Z") {
        return Vec3{0.0, 0.0, 1.0};
    }
    Vec3 v{};
    std::istringstream in(text);
    std::string part;
    std::size_t k = 0;
    bool ok = true;
    while (std::getline(in, part, ',')) {
        std::size_t used = 0;
        try {
            if (k < 3) {
                v[k] = std::stod(part, &used);
            }
        } catch (const std::exception&) {
            ok = false;
        }
        ok = ok && k < 3 && used == part.size() && std::isfinite(v[k]);
        ++k;
    }
    if (!ok || k != 3 || (v[0] == 0.0 && v[1] == 0.0 && v[2] == 0.0)) {
        return fail(ErrorCode::kInvalidArgument,
                    "--axis '{}': give x, y, z or a non-zero vector a,b,c", text);
    }
    const double n = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    return Vec3{v[0] / n, v[1] / n, v[2] / n};
}

Result<std::vector<std::pair<int, int>>> parse_bond_types(const std::vector<std::string>& specs) {
    std::vector<std::pair<int, int>> pairs;
    for (const std::string& spec : specs) {
        const auto dash = spec.find('-');
        int a = 0;
        int b = 0;
        bool ok = dash != std::string::npos;
        if (ok) {
            try {
                std::size_t used_a = 0;
                std::size_t used_b = 0;
                a = std::stoi(spec.substr(0, dash), &used_a);
                b = std::stoi(spec.substr(dash + 1), &used_b);
                ok = used_a == dash && used_b == spec.size() - dash - 1;
            } catch (const std::exception&) {
                ok = false;
            }
        }
        if (!ok) {
            return fail(ErrorCode::kInvalidArgument,
                        "--bond-types '{}': give a pair of atom types like 1-2", spec);
        }
        pairs.emplace_back(a, b);
    }
    return pairs;
}

// One snapshot of a dump, chosen by index (negative: from the end).
struct Frame {
    std::string file;
    int index = 0;
    atomistic::Snapshot snapshot;
};

Result<Frame> select_frame(const std::vector<atomistic::Snapshot>& snapshots,
                           const std::string& file, int frame, const char* option) {
    const auto n = static_cast<int>(snapshots.size());
    const int index = frame < 0 ? n + frame : frame;
    if (index < 0 || index >= n) {
        return fail(ErrorCode::kInvalidArgument, "{} {}: {} holds {} snapshot{} (0 to {})", option,
                    frame, file, n, n == 1 ? "" : "s", n - 1);
    }
    return Frame{file, index, snapshots[static_cast<std::size_t>(index)]};
}

// Writes NeXus objects by absolute path with lib/hdf5's owned identifiers; after the first
// failure every call is a no-op and finish() reports it (as lib/io's NexusWriter does).
class NexusOut {
  public:
    explicit NexusOut(const fs::path& path) : path_(path) {
        hdf5::silence_hdf5_errors();
        file_ = hdf5::file_handle(
            H5Fcreate(path.string().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
        check(file_.valid(), "cannot create the file");
    }

    void group(const std::string& path, std::string_view nx_class) {
        if (failed()) {
            return;
        }
        hdf5::Hid g = hdf5::group_handle(
            H5Gcreate2(file_.get(), path.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        check(g.valid(), "cannot create group " + path);
        attr(path, "NX_class", nx_class);
    }

    void attr(const std::string& object, const char* name, std::string_view value) {
        attr_texts(object, name, {std::string(value)}, true);
    }

    void attr_texts(const std::string& object, const char* name,
                    const std::vector<std::string>& values, bool scalar = false) {
        if (failed()) {
            return;
        }
        std::vector<const char*> texts;
        texts.reserve(values.size());
        for (const auto& v : values) {
            texts.push_back(v.c_str());
        }
        const hsize_t dims[1] = {texts.size()};
        hdf5::Hid space =
            hdf5::space_handle(scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, nullptr));
        hdf5::Hid type = string_type();
        hdf5::Hid a = hdf5::attribute_handle(H5Acreate_by_name(file_.get(), object.c_str(), name,
                                                               type.get(), space.get(), H5P_DEFAULT,
                                                               H5P_DEFAULT, H5P_DEFAULT));
        check(a.valid() && H5Awrite(a.get(), type.get(), texts.data()) >= 0,
              fmt::format("cannot write attribute {}@{}", object, name));
    }

    void text(const std::string& path, std::string_view value) {
        const std::string copy(value);
        const char* data = copy.c_str();
        hdf5::Hid space = hdf5::space_handle(H5Screate(H5S_SCALAR));
        hdf5::Hid type = string_type();
        write(path, space.get(), type.get(), type.get(), &data);
    }

    void texts(const std::string& path, const std::vector<std::string>& values) {
        std::vector<const char*> data;
        data.reserve(values.size());
        for (const auto& v : values) {
            data.push_back(v.c_str());
        }
        const hsize_t dims[1] = {data.size()};
        hdf5::Hid space = hdf5::space_handle(H5Screate_simple(1, dims, nullptr));
        hdf5::Hid type = string_type();
        write(path, space.get(), type.get(), type.get(), data.data());
    }

    /// A float64 dataset of the given shape, with @units ("" = dimensionless).
    void doubles(const std::string& path, const std::vector<hsize_t>& dims,
                 const std::vector<double>& values, std::string_view units) {
        hdf5::Hid space = hdf5::space_handle(
            H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
        write(path, space.get(), H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, values.data());
        attr(path, "units", units);
    }

    void doubles(const std::string& path, const std::vector<double>& values,
                 std::string_view units) {
        doubles(path, {values.size()}, values, units);
    }

    void integers(const std::string& path, const std::vector<std::int64_t>& values) {
        const hsize_t dims[1] = {values.size()};
        hdf5::Hid space = hdf5::space_handle(H5Screate_simple(1, dims, nullptr));
        write(path, space.get(), H5T_STD_I64LE, H5T_NATIVE_INT64, values.data());
    }

    void number(const std::string& path, double value, std::string_view units) {
        hdf5::Hid space = hdf5::space_handle(H5Screate(H5S_SCALAR));
        write(path, space.get(), H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
        attr(path, "units", units);
    }

    void integer(const std::string& path, std::int64_t value) {
        hdf5::Hid space = hdf5::space_handle(H5Screate(H5S_SCALAR));
        write(path, space.get(), H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
    }

    Result<void> finish() {
        if (!failed() && !file_.close()) {
            error_ = "cannot flush the file: " + hdf5::hdf5_error_detail();
        }
        if (error_) {
            return fail(ErrorCode::kIo, "--out: {}: {}", path_.string(), *error_);
        }
        return {};
    }

  private:
    [[nodiscard]] bool failed() const { return error_.has_value(); }

    void check(bool ok, const std::string& what) {
        if (!ok && !failed()) {
            error_ = what + ": " + hdf5::hdf5_error_detail();
        }
    }

    static hdf5::Hid string_type() {
        hdf5::Hid type = hdf5::type_handle(H5Tcopy(H5T_C_S1));
        H5Tset_size(type.get(), H5T_VARIABLE);
        H5Tset_cset(type.get(), H5T_CSET_UTF8);
        return type;
    }

    void write(const std::string& path, hid_t space, hid_t file_type, hid_t memory_type,
               const void* data) {
        if (failed()) {
            return;
        }
        hdf5::Hid d = hdf5::dataset_handle(H5Dcreate2(file_.get(), path.c_str(), file_type, space,
                                                      H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        hsize_t points = 0;
        if (d.valid()) {
            points = static_cast<hsize_t>(H5Sget_simple_extent_npoints(space));
        }
        check(d.valid() && (points == 0 || H5Dwrite(d.get(), memory_type, H5S_ALL, H5S_ALL,
                                                    H5P_DEFAULT, data) >= 0),
              "cannot write " + path);
    }

    fs::path path_;
    hdf5::Hid file_;
    std::optional<std::string> error_;
};

std::string number_text(double v) { return fmt::format("{:.12g}", v); }

std::vector<double> stderr_of(const std::vector<double>& variance) {
    std::vector<double> out(variance.size());
    std::transform(variance.begin(), variance.end(), out.begin(),
                   [](double v) { return std::sqrt(v); });
    return out;
}

// A CSV file: one header line (units in the column names), then rows.
class Csv {
  public:
    explicit Csv(const std::vector<std::string_view>& columns) {
        // Appended piecewise: "," + std::string(...) trips GCC 12's -Wrestrict at -O3.
        for (std::size_t k = 0; k < columns.size(); ++k) {
            if (k > 0) {
                text_ += ',';
            }
            text_ += columns[k];
        }
        text_ += '\n';
    }
    template <class... T>
    void row(const T&... values) {
        std::string line;
        ((line += (line.empty() ? "" : ",") + cell(values)), ...);
        text_ += line + '\n';
    }
    [[nodiscard]] Result<void> write(const fs::path& path) const {
        std::ofstream out(path, std::ios::binary);
        out << text_;
        out.close();
        if (!out) {
            return fail(ErrorCode::kIo, "--out: cannot write {}", path.string());
        }
        return {};
    }

  private:
    static std::string cell(double v) { return number_text(v); }
    static std::string cell(const std::string& s) { return s; }
    template <class I>
    requires std::is_integral_v<I>
    static std::string cell(I v) { return std::to_string(v); }
    std::string text_;
};

// Everything the command computes, for the writers and the summary.
struct MdResult {
    Frame reference;
    Frame deformed;
    Vec3 axis{};
    double r_max = 0.0;
    std::optional<double> first_minimum;
    double minimum_step = 0.0;  ///< bin width of the g(r) the first minimum was found on
    double cutoff = 0.0;
    atomistic::PairDistribution pd_reference;
    atomistic::PairDistribution pd_deformed;
    physics::RCurve delta_g2;
    atomistic::D2MinResult d2min;
    atomistic::BondBreaking breaking;
    atomistic::Binning binning;
    std::vector<atomistic::BondBreakingBin> bins;
    std::optional<atomistic::LinearFit> fit;
    std::string fit_error;
    std::vector<atomistic::PairDistribution> by_bin;
    atomistic::BondOrientationChange orientation;
    double r_fit_min = 0.0;
    double r_fit_max = 0.0;
    physics::SlopeFit alpha;
    std::string alpha_error;
    double eps_aff = kNaN;
    double eps_aff_stderr = kNaN;
};

nlohmann::json parameters_json(const MdOptions& o, const MdResult& r) {
    return {
        {"dumps", o.dumps},
        {"reference_frame", r.reference.index},
        {"deformed_frame", r.deformed.index},
        {"axis", o.axis},
        {"loading_axis", {r.axis[0], r.axis[1], r.axis[2]}},
        {"cutoff", r.cutoff},
        {"cutoff_given", o.cutoff.has_value()},
        {"cutoff_factor", o.cutoff_factor},
        {"first_minimum", r.first_minimum ? nlohmann::json(*r.first_minimum) : nullptr},
        {"first_minimum_r_step", r.minimum_step},
        {"break_factor", o.break_factor},
        {"d2min_bins", o.d2min_bins},
        {"d2min_binning", o.d2min_binning},
        {"r_max", r.r_max},
        {"r_step", o.r_step},
        {"nu", o.nu},
        {"r_fit_min", r.r_fit_min},
        {"r_fit_max", r.r_fit_max},
        {"bond_types", o.bond_types},
        {"bond_set", o.bond_set},
        {"phi_bins", o.phi_bins},
    };
}

Result<void> write_nexus(const fs::path& path, const MdOptions& o, const MdResult& r) {
    NexusOut out(path);
    const std::size_t n = r.reference.snapshot.size();
    const auto n_bins = static_cast<hsize_t>(r.binning.size());
    out.attr("/", "NX_class", "NXroot");
    out.attr("/", "creator", std::string("anisoflow ") + ANISOFLOW_VERSION);
    out.attr("/", "default", "entry");
    out.group("/entry", "NXentry");
    out.attr("/entry", "default", "bond_breaking");
    out.text("/entry/program_name", "anisoflow md");
    out.attr("/entry/program_name", "version", ANISOFLOW_VERSION);
    out.text("/entry/harmonics_normalisation", kNormalisation);

    const std::string par = "/entry/parameters";
    out.group(par, "NXparameters");
    out.text(par + "/reference_file", r.reference.file);
    out.text(par + "/deformed_file", r.deformed.file);
    out.integer(par + "/reference_frame", r.reference.index);
    out.integer(par + "/deformed_frame", r.deformed.index);
    out.integer(par + "/reference_timestep", r.reference.snapshot.timestep);
    out.integer(par + "/deformed_timestep", r.deformed.snapshot.timestep);
    out.integer(par + "/atoms", static_cast<std::int64_t>(n));
    out.doubles(par + "/loading_axis", {r.axis[0], r.axis[1], r.axis[2]}, "");
    out.number(par + "/cutoff", r.cutoff, "angstrom");
    out.number(par + "/first_minimum", r.first_minimum.value_or(kNaN), "angstrom");
    out.number(par + "/first_minimum_r_step", r.minimum_step, "angstrom");
    out.number(par + "/cutoff_factor", o.cutoff ? kNaN : o.cutoff_factor, "");
    out.number(par + "/break_factor", o.break_factor, "");
    out.text(par + "/d2min_binning", o.d2min_binning);
    out.integer(par + "/d2min_bins", static_cast<std::int64_t>(o.d2min_bins));
    out.number(par + "/r_max", r.r_max, "angstrom");
    out.number(par + "/r_step", o.r_step, "angstrom");
    out.number(par + "/nu", o.nu, "");
    out.texts(par + "/bond_types", o.bond_types);
    out.text(par + "/bond_set", o.bond_set);
    out.integer(par + "/phi_bins", static_cast<std::int64_t>(o.phi_bins));
    out.text(par + "/configuration_json", parameters_json(o, r).dump(2));

    const std::string atoms = "/entry/atoms";
    out.group(atoms, "NXdata");
    out.attr(atoms, "signal", "d2min");
    std::vector<std::int64_t> types(r.reference.snapshot.type.begin(),
                                    r.reference.snapshot.type.end());
    std::vector<std::int64_t> neighbours(r.d2min.neighbour_count.begin(),
                                         r.d2min.neighbour_count.end());
    std::vector<std::int64_t> bonds(r.breaking.bonds.begin(), r.breaking.bonds.end());
    std::vector<std::int64_t> broken(r.breaking.broken.begin(), r.breaking.broken.end());
    std::vector<std::int64_t> bin(r.binning.bin.begin(), r.binning.bin.end());
    std::vector<double> affine;
    affine.reserve(9 * n);
    for (const auto& j : r.d2min.affine) {
        affine.insert(affine.end(), j.begin(), j.end());
    }
    out.integers(atoms + "/id", r.reference.snapshot.id);
    out.integers(atoms + "/type", types);
    out.doubles(atoms + "/d2min", r.d2min.d2min, "angstrom^2");
    out.integers(atoms + "/neighbour_count", neighbours);
    out.doubles(atoms + "/affine", {n, 3, 3}, affine, "");
    out.integers(atoms + "/bonds", bonds);
    out.integers(atoms + "/broken_bonds", broken);
    out.doubles(atoms + "/bond_fraction", r.breaking.fraction, "");
    out.integers(atoms + "/d2min_bin", bin);

    const std::string pd = "/entry/pair_distribution";
    out.group(pd, "NXdata");
    out.attr(pd, "signal", "g2");
    out.attr(pd, "axes", "r");
    out.attr(pd, "normalisation", kNormalisation);
    out.doubles(pd + "/r", r.pd_deformed.g0.r_angstrom, "angstrom");
    const std::pair<const char*, const physics::RCurve*> curves[] = {
        {"g0", &r.pd_deformed.g0},
        {"g2", &r.pd_deformed.g2},
        {"g0_reference", &r.pd_reference.g0},
        {"g2_reference", &r.pd_reference.g2},
        {"delta_g2", &r.delta_g2},
    };
    for (const auto& [name, curve] : curves) {
        out.doubles(pd + "/" + name, curve->value, "");
        out.doubles(pd + "/" + name + "_errors", stderr_of(curve->variance), "");
    }

    const std::string gb = "/entry/g2_by_d2min";
    out.group(gb, "NXdata");
    out.attr(gb, "signal", "g2");
    out.attr_texts(gb, "axes", {"d2min_bin", "r"});
    out.attr(gb, "normalisation", kNormalisation);
    out.doubles(gb + "/r", r.pd_deformed.g0.r_angstrom, "angstrom");
    std::vector<std::int64_t> bin_index(n_bins);
    for (hsize_t k = 0; k < n_bins; ++k) {
        bin_index[k] = static_cast<std::int64_t>(k);
    }
    out.integers(gb + "/d2min_bin", bin_index);
    const auto n_r = static_cast<hsize_t>(r.pd_deformed.g0.size());
    std::vector<double> g0;
    std::vector<double> g0_err;
    std::vector<double> g2;
    std::vector<double> g2_err;
    std::vector<std::int64_t> group_atoms;
    for (const auto& group : r.by_bin) {
        g0.insert(g0.end(), group.g0.value.begin(), group.g0.value.end());
        g2.insert(g2.end(), group.g2.value.begin(), group.g2.value.end());
        const auto e0 = stderr_of(group.g0.variance);
        const auto e2 = stderr_of(group.g2.variance);
        g0_err.insert(g0_err.end(), e0.begin(), e0.end());
        g2_err.insert(g2_err.end(), e2.begin(), e2.end());
        group_atoms.push_back(static_cast<std::int64_t>(group.atoms));
    }
    out.doubles(gb + "/g0", {n_bins, n_r}, g0, "");
    out.doubles(gb + "/g0_errors", {n_bins, n_r}, g0_err, "");
    out.doubles(gb + "/g2", {n_bins, n_r}, g2, "");
    out.doubles(gb + "/g2_errors", {n_bins, n_r}, g2_err, "");
    out.integers(gb + "/atoms", group_atoms);
    out.doubles(gb + "/d2min_edges", r.binning.edges, "angstrom^2");

    const std::string bb = "/entry/bond_breaking";
    out.group(bb, "NXdata");
    out.attr(bb, "signal", "fraction");
    out.attr(bb, "axes", "d2min_mean");
    std::vector<double> lower;
    std::vector<double> upper;
    std::vector<double> mean;
    std::vector<double> fraction;
    std::vector<double> fraction_err;
    std::vector<std::int64_t> bin_atoms;
    std::vector<std::int64_t> bin_bonds;
    std::vector<std::int64_t> bin_broken;
    for (const auto& b : r.bins) {
        lower.push_back(b.lower);
        upper.push_back(b.upper);
        mean.push_back(b.d2min_mean);
        fraction.push_back(b.fraction_mean);
        fraction_err.push_back(std::sqrt(b.fraction_variance));
        bin_atoms.push_back(static_cast<std::int64_t>(b.atoms));
        bin_bonds.push_back(static_cast<std::int64_t>(b.bonds));
        bin_broken.push_back(static_cast<std::int64_t>(b.broken));
    }
    out.doubles(bb + "/d2min_lower", lower, "angstrom^2");
    out.doubles(bb + "/d2min_upper", upper, "angstrom^2");
    out.doubles(bb + "/d2min_mean", mean, "angstrom^2");
    out.doubles(bb + "/fraction", fraction, "");
    out.doubles(bb + "/fraction_errors", fraction_err, "");
    out.integers(bb + "/atoms", bin_atoms);
    out.integers(bb + "/bonds", bin_bonds);
    out.integers(bb + "/broken", bin_broken);
    out.integer(bb + "/total_bonds", static_cast<std::int64_t>(r.breaking.total_bonds));
    out.integer(bb + "/total_broken", static_cast<std::int64_t>(r.breaking.total_broken));

    const std::string fit = "/entry/bond_breaking_fit";
    out.group(fit, "NXparameters");
    out.text(fit + "/model", "fraction = intercept + slope * d2min (weighted least squares)");
    const atomistic::LinearFit f = r.fit.value_or(atomistic::LinearFit{});
    out.number(fit + "/slope", f.slope, "angstrom^-2");
    out.number(fit + "/slope_stderr", f.slope_stderr, "angstrom^-2");
    out.number(fit + "/intercept", f.intercept, "");
    out.number(fit + "/intercept_stderr", f.intercept_stderr, "");
    out.number(fit + "/covariance", f.covariance, "angstrom^-2");
    out.number(fit + "/reduced_chi2", f.reduced_chi2, "");
    out.integer(fit + "/n_points", static_cast<std::int64_t>(f.n_points));
    out.text(fit + "/error", r.fit_error);

    const std::string bo = "/entry/bond_orientation";
    const auto& ori = r.orientation;
    out.group(bo, "NXdata");
    out.attr(bo, "signal", "delta_p");
    out.attr(bo, "axes", "phi");
    out.attr(bo, "normalisation", kOrientationNormalisation);
    out.doubles(bo + "/phi", ori.reference.phi_deg, "deg");
    out.doubles(bo + "/phi_edges", ori.reference.phi_edges_deg, "deg");
    out.doubles(bo + "/p_reference", ori.reference.p, "");
    out.doubles(bo + "/p_reference_errors", stderr_of(ori.reference.p_variance), "");
    out.doubles(bo + "/p_deformed", ori.deformed.p, "");
    out.doubles(bo + "/p_deformed_errors", stderr_of(ori.deformed.p_variance), "");
    out.doubles(bo + "/delta_p", ori.delta_p, "");
    out.doubles(bo + "/delta_p_errors", stderr_of(ori.delta_p_variance), "");
    out.integers(bo + "/counts_reference", std::vector<std::int64_t>(ori.reference.counts.begin(),
                                                                     ori.reference.counts.end()));
    out.integers(bo + "/counts_deformed",
                 std::vector<std::int64_t>(ori.deformed.counts.begin(), ori.deformed.counts.end()));

    const std::string af = "/entry/affine_fit";
    out.group(af, "NXparameters");
    out.text(af + "/model",
             "g2(deformed) - g2(reference) = alpha r dg0/dr (SPEC 7, g0 of the deformed)");
    out.number(af + "/alpha", r.alpha.slope, "");
    out.number(af + "/alpha_stderr", r.alpha.stderr_value, "");
    out.number(af + "/alpha_reduced_chi2", r.alpha.reduced_chi2, "");
    out.number(af + "/eps_aff", r.eps_aff, "");
    out.number(af + "/eps_aff_stderr", r.eps_aff_stderr, "");
    out.number(af + "/nu", o.nu, "");
    out.number(af + "/r_fit_min", r.r_fit_min, "angstrom");
    out.number(af + "/r_fit_max", r.r_fit_max, "angstrom");
    out.integer(af + "/n_points", static_cast<std::int64_t>(r.alpha.n_points));
    out.text(af + "/error", r.alpha_error);
    return out.finish();
}

Result<std::vector<fs::path>> write_csvs(const fs::path& stem, const MdResult& r) {
    std::vector<std::pair<fs::path, Csv>> files;
    const auto path = [&](std::string_view table) {
        return fs::path(stem.string() + "_" + std::string(table) + ".csv");
    };

    Csv atoms({"id", "type", "d2min_angstrom2", "neighbours", "bonds", "broken_bonds",
               "bond_fraction", "d2min_bin", "J_xx", "J_xy", "J_xz", "J_yx", "J_yy", "J_yz", "J_zx",
               "J_zy", "J_zz"});
    const auto& s = r.reference.snapshot;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto& j = r.d2min.affine[i];
        atoms.row(s.id[i], s.type[i], r.d2min.d2min[i], r.d2min.neighbour_count[i],
                  r.breaking.bonds[i], r.breaking.broken[i], r.breaking.fraction[i],
                  r.binning.bin[i], j[0], j[1], j[2], j[3], j[4], j[5], j[6], j[7], j[8]);
    }
    files.emplace_back(path("atoms"), std::move(atoms));

    Csv pd({"r_angstrom", "g0", "g0_err", "g2", "g2_err", "g0_reference", "g0_reference_err",
            "g2_reference", "g2_reference_err", "delta_g2", "delta_g2_err"});
    const auto& d = r.pd_deformed;
    const auto& f = r.pd_reference;
    for (std::size_t k = 0; k < d.g0.size(); ++k) {
        pd.row(d.g0.r_angstrom[k], d.g0.value[k], std::sqrt(d.g0.variance[k]), d.g2.value[k],
               std::sqrt(d.g2.variance[k]), f.g0.value[k], std::sqrt(f.g0.variance[k]),
               f.g2.value[k], std::sqrt(f.g2.variance[k]), r.delta_g2.value[k],
               std::sqrt(r.delta_g2.variance[k]));
    }
    files.emplace_back(path("pair_distribution"), std::move(pd));

    Csv gb({"d2min_bin", "d2min_lower_angstrom2", "d2min_upper_angstrom2", "atoms", "r_angstrom",
            "g0", "g0_err", "g2", "g2_err"});
    for (std::size_t b = 0; b < r.by_bin.size(); ++b) {
        const auto& g = r.by_bin[b];
        for (std::size_t k = 0; k < g.g0.size(); ++k) {
            gb.row(b, r.binning.edges[b], r.binning.edges[b + 1], g.atoms, g.g0.r_angstrom[k],
                   g.g0.value[k], std::sqrt(g.g0.variance[k]), g.g2.value[k],
                   std::sqrt(g.g2.variance[k]));
        }
    }
    files.emplace_back(path("g2_by_d2min"), std::move(gb));

    Csv bb({"d2min_bin", "d2min_lower_angstrom2", "d2min_upper_angstrom2", "d2min_mean_angstrom2",
            "atoms", "bonds", "broken", "fraction", "fraction_err"});
    for (std::size_t b = 0; b < r.bins.size(); ++b) {
        const auto& x = r.bins[b];
        bb.row(b, x.lower, x.upper, x.d2min_mean, x.atoms, x.bonds, x.broken, x.fraction_mean,
               std::sqrt(x.fraction_variance));
    }
    files.emplace_back(path("bond_breaking"), std::move(bb));

    Csv fit({"slope_per_angstrom2", "slope_err_per_angstrom2", "intercept", "intercept_err",
             "covariance_per_angstrom2", "reduced_chi2", "n_points"});
    const atomistic::LinearFit lf = r.fit.value_or(atomistic::LinearFit{});
    fit.row(lf.slope, lf.slope_stderr, lf.intercept, lf.intercept_stderr, lf.covariance,
            lf.reduced_chi2, lf.n_points);
    files.emplace_back(path("bond_breaking_fit"), std::move(fit));

    Csv bo({"phi_lower_deg", "phi_upper_deg", "phi_deg", "count_reference", "count_deformed",
            "p_reference", "p_reference_err", "p_deformed", "p_deformed_err", "delta_p",
            "delta_p_err"});
    const auto& o = r.orientation;
    for (std::size_t k = 0; k < o.delta_p.size(); ++k) {
        bo.row(o.reference.phi_edges_deg[k], o.reference.phi_edges_deg[k + 1],
               o.reference.phi_deg[k], o.reference.counts[k], o.deformed.counts[k],
               o.reference.p[k], std::sqrt(o.reference.p_variance[k]), o.deformed.p[k],
               std::sqrt(o.deformed.p_variance[k]), o.delta_p[k], std::sqrt(o.delta_p_variance[k]));
    }
    files.emplace_back(path("bond_orientation"), std::move(bo));

    Csv summary({"quantity", "value", "stderr", "unit"});
    const std::string none;
    summary.row(std::string("atoms"), static_cast<double>(s.size()), kNaN, none);
    summary.row(std::string("cutoff"), r.cutoff, kNaN, std::string("angstrom"));
    summary.row(std::string("first_minimum"), r.first_minimum.value_or(kNaN), kNaN,
                std::string("angstrom"));
    summary.row(std::string("bonds"), static_cast<double>(r.breaking.total_bonds), kNaN, none);
    summary.row(std::string("broken_bonds"), static_cast<double>(r.breaking.total_broken), kNaN,
                none);
    summary.row(std::string("bond_fit_slope"), lf.slope, lf.slope_stderr,
                std::string("angstrom^-2"));
    summary.row(std::string("bond_fit_intercept"), lf.intercept, lf.intercept_stderr, none);
    summary.row(std::string("alpha"), r.alpha.slope, r.alpha.stderr_value, none);
    summary.row(std::string("eps_aff"), r.eps_aff, r.eps_aff_stderr, none);
    files.emplace_back(path("summary"), std::move(summary));

    std::vector<fs::path> written;
    for (const auto& [p, csv] : files) {
        if (auto ok = csv.write(p); !ok) {
            return tl::unexpected(ok.error());
        }
        written.push_back(p);
    }
    return written;
}

// The median of the finite values (for the summary).
double median(std::vector<double> v) {
    v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }),
            v.end());
    if (v.empty()) {
        return kNaN;
    }
    const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
    std::nth_element(v.begin(), mid, v.end());
    return *mid;
}

}  // namespace

CLI::App* add_md_command(CLI::App& app, MdOptions& o) {
    CLI::App* cmd = app.add_subcommand(
        "md", "Atomistic analysis of LAMMPS dumps: D2_min, g0/g2, bond breaking, Delta P(phi)");
    cmd->add_option("dumps", o.dumps,
                    "REF.dump [DEF.dump]: reference and deformed configurations (one file: two "
                    "snapshots of it)")
        ->required()
        ->expected(1, 2);
    cmd->add_option("--reference-frame", o.reference_frame,
                    "snapshot of REF to use (0 = first, -1 = last)")
        ->capture_default_str();
    cmd->add_option("--deformed-frame", o.deformed_frame,
                    "snapshot of DEF (or of REF when only one dump is given) to use")
        ->capture_default_str();
    cmd->add_option("--axis", o.axis, "loading axis: x, y, z or a vector a,b,c")
        ->capture_default_str();
    auto* cutoff = cmd->add_option("--cutoff", o.cutoff,
                                   "bond and D2_min cutoff, length unit of the dump (default: "
                                   "--cutoff-factor x the first minimum of g(r))");
    cmd->add_option("--cutoff-factor", o.cutoff_factor,
                    "cutoff as a multiple of the first minimum of the reference g(r)")
        ->capture_default_str()
        ->excludes(cutoff);
    cmd->add_option("--break-factor", o.break_factor,
                    "a bond is broken once longer than this times the cutoff (>= 1)")
        ->capture_default_str();
    cmd->add_option("--d2min-bins", o.d2min_bins, "number of D2_min bins")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->add_option("--d2min-binning", o.d2min_binning,
                    "quantile (equal atoms per bin) or uniform (equal widths)")
        ->capture_default_str()
        ->check(CLI::IsMember({"quantile", "uniform"}));
    cmd->add_option("--r-max", o.r_max,
                    "histogram reach (default: min(10, 0.45 x the smallest box width))");
    cmd->add_option("--r-step", o.r_step, "histogram bin width")->capture_default_str();
    cmd->add_option("--nu", o.nu, "Poisson ratio (for eps_aff)")->required();
    cmd->add_option("--r-fit-min", o.r_fit_min,
                    "affine fit range start (default: where every r bin up to r-max holds pairs)");
    cmd->add_option("--r-fit-max", o.r_fit_max, "affine fit range end (default: the last r bin)");
    cmd->add_option("--bond-types", o.bond_types,
                    "Delta P(phi) of the bonds joining these type pairs only, e.g. 1-2 "
                    "(repeatable; default: all bonds)")
        ->delimiter(',');
    cmd->add_option("--bond-set", o.bond_set,
                    "deformed bonds for Delta P(phi): own (pairs within the cutoff there) or "
                    "tracked (the reference bonds)")
        ->capture_default_str()
        ->check(CLI::IsMember({"own", "tracked"}));
    cmd->add_option("--phi-bins", o.phi_bins, "bins of phi over [0, 90] deg")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->add_option("--out", o.out_dir, "output directory (created if missing)")->required();
    cmd->add_option("--name", o.name,
                    "file name stem (default: the deformed dump's name without extension)");
    return cmd;
}

int run_md(const MdOptions& o) {
    // Options first: a typo fails before the dumps are read.
    auto axis = parse_axis(o.axis);
    if (!axis) {
        return report(axis.error());
    }
    auto type_pairs = parse_bond_types(o.bond_types);
    if (!type_pairs) {
        return report(type_pairs.error());
    }
    if (!(o.nu > -1.0 && o.nu < 0.5)) {
        return report(Error{ErrorCode::kInvalidArgument,
                            fmt::format("--nu {}: a Poisson ratio is in (-1, 0.5)", o.nu)});
    }
    if (!(o.r_step > 0.0)) {
        return report(Error{ErrorCode::kInvalidArgument,
                            fmt::format("--r-step {}: must be positive", o.r_step)});
    }
    if (o.cutoff && !(*o.cutoff > 0.0)) {
        return report(Error{ErrorCode::kInvalidArgument,
                            fmt::format("--cutoff {}: must be positive", *o.cutoff)});
    }
    if (!(o.cutoff_factor > 0.0)) {
        return report(Error{ErrorCode::kInvalidArgument,
                            fmt::format("--cutoff-factor {}: must be positive", o.cutoff_factor)});
    }
    if (!(o.break_factor >= 1.0)) {
        return report(
            Error{ErrorCode::kInvalidArgument,
                  fmt::format("--break-factor {}: must be at least 1 (below 1, bonds that did not "
                              "change would count as broken)",
                              o.break_factor)});
    }
    std::error_code ec;
    fs::create_directories(o.out_dir, ec);
    if (ec || !fs::is_directory(o.out_dir)) {
        return report(
            Error{ErrorCode::kIo, fmt::format("--out {}: cannot create the directory", o.out_dir)});
    }

    MdResult r;
    r.axis = *axis;
    {
        auto ref_snapshots = atomistic::read_lammps_dump(o.dumps.front());
        if (!ref_snapshots) {
            return report(ref_snapshots.error());
        }
        auto ref =
            select_frame(*ref_snapshots, o.dumps.front(), o.reference_frame, "--reference-frame");
        if (!ref) {
            return report(ref.error());
        }
        r.reference = std::move(*ref);
        if (o.dumps.size() == 1) {
            if (ref_snapshots->size() < 2) {
                return report(Error{ErrorCode::kInvalidArgument,
                                    fmt::format("{} holds one snapshot: give a deformed dump too "
                                                "(anisoflow md REF.dump DEF.dump)",
                                                o.dumps.front())});
            }
            auto def =
                select_frame(*ref_snapshots, o.dumps.front(), o.deformed_frame, "--deformed-frame");
            if (!def) {
                return report(def.error());
            }
            if (def->index == r.reference.index) {
                return report(Error{ErrorCode::kInvalidArgument,
                                    fmt::format("--reference-frame and --deformed-frame both "
                                                "select snapshot {} of {}",
                                                def->index, o.dumps.front())});
            }
            r.deformed = std::move(*def);
        }
    }
    if (o.dumps.size() == 2) {
        auto def_snapshots = atomistic::read_lammps_dump(o.dumps.back());
        if (!def_snapshots) {
            return report(def_snapshots.error());
        }
        auto def =
            select_frame(*def_snapshots, o.dumps.back(), o.deformed_frame, "--deformed-frame");
        if (!def) {
            return report(def.error());
        }
        r.deformed = std::move(*def);
    }
    const auto& ref = r.reference.snapshot;
    const auto& def = r.deformed.snapshot;
    if (ref.id != def.id) {
        return report(
            Error{ErrorCode::kInvalidArgument,
                  fmt::format("{} (snapshot {}) and {} (snapshot {}) do not hold the same atom ids "
                              "({} and {} atoms): D2_min and bonds pair atoms by id",
                              r.reference.file, r.reference.index, r.deformed.file,
                              r.deformed.index, ref.size(), def.size())});
    }
    if (!type_pairs->empty()) {
        const std::set<int> present(ref.type.begin(), ref.type.end());
        for (const auto& [a, b] : *type_pairs) {
            if (!present.contains(a) || !present.contains(b)) {
                std::string list;
                for (const int t : present) {
                    list += (list.empty() ? "" : ", ") + std::to_string(t);
                }
                return report(Error{ErrorCode::kInvalidArgument,
                                    fmt::format("--bond-types {}-{}: {} has atom types {} only", a,
                                                b, r.reference.file, list)});
            }
        }
    }

    // Histogram reach: below half the smallest width of either box (the cell lists' limit).
    double smallest_width = std::numeric_limits<double>::infinity();
    for (const auto* box : {&ref.box, &def.box}) {
        for (const double w : box->perpendicular_widths()) {
            smallest_width = std::min(smallest_width, w);
        }
    }
    r.r_max = o.r_max.value_or(std::min(kDefaultRMax, kRMaxWidthFraction * smallest_width));
    const atomistic::PairDistributionOptions pd_options{r.r_max, o.r_step, r.axis};
    auto pd_ref = atomistic::pair_distribution(ref.box, ref.position, pd_options);
    if (!pd_ref) {
        return report(pd_ref.error().with_context(
            fmt::format("{} (--r-max {}, --r-step {})", r.reference.file, r.r_max, o.r_step)));
    }
    auto pd_def = atomistic::pair_distribution(def.box, def.position, pd_options);
    if (!pd_def) {
        return report(pd_def.error().with_context(
            fmt::format("{} (--r-max {}, --r-step {})", r.deformed.file, r.r_max, o.r_step)));
    }
    r.pd_reference = std::move(*pd_ref);
    r.pd_deformed = std::move(*pd_def);
    // A fit range given by hand must lie on the histogram (a default one that cannot be fitted
    // only leaves alpha out, below).
    const double grid_lo = r.pd_deformed.g0.r_angstrom.front();
    const double grid_hi = r.pd_deformed.g0.r_angstrom.back();
    const double fit_lo = o.r_fit_min.value_or(grid_lo);
    const double fit_hi = o.r_fit_max.value_or(grid_hi);
    if ((o.r_fit_min || o.r_fit_max) && (!(fit_lo < fit_hi) || fit_lo < grid_lo - 0.5 * o.r_step ||
                                         fit_hi > grid_hi + 0.5 * o.r_step)) {
        return report(Error{ErrorCode::kInvalidArgument,
                            fmt::format("--r-fit-min/--r-fit-max: [{}, {}] is not an interval "
                                        "inside the histogram's bin centres [{}, {}] (--r-max)",
                                        fit_lo, fit_hi, grid_lo, grid_hi)});
    }
    // The first minimum on bins of at least 0.04 mean spacings (rho^-1/3): a finer histogram of
    // a few thousand atoms has dips of noise deeper than the 5-bin smoothing removes.
    const double spacing = std::cbrt(ref.box.volume() / static_cast<double>(ref.size()));
    const double minimum_step = std::max(o.r_step, kMinimumStepSpacings * spacing);
    auto coarse =
        minimum_step > o.r_step
            ? atomistic::pair_distribution(ref.box, ref.position, {r.r_max, minimum_step, r.axis})
            : Result<atomistic::PairDistribution>(r.pd_reference);
    if (!coarse) {
        return report(coarse.error().with_context(r.reference.file));
    }
    r.minimum_step = minimum_step;
    if (auto minimum = atomistic::first_minimum(coarse->g0); minimum) {
        r.first_minimum = *minimum;
    } else if (!o.cutoff) {
        return report(minimum.error().with_context(fmt::format(
            "{}: no first minimum of g(r) for the cutoff (give --cutoff)", r.reference.file)));
    }
    r.cutoff = o.cutoff.value_or(o.cutoff_factor * r.first_minimum.value_or(kNaN));

    auto d2 = atomistic::compute_d2min(ref.box, ref.position, def.box, def.position, {r.cutoff});
    if (!d2) {
        return report(d2.error().with_context("--cutoff"));
    }
    r.d2min = std::move(*d2);
    auto breaking = atomistic::compute_bond_breaking(ref.box, ref.position, def.box, def.position,
                                                     {r.cutoff, o.break_factor});
    if (!breaking) {
        return report(breaking.error());
    }
    r.breaking = std::move(*breaking);
    const auto scheme = o.d2min_binning == "uniform" ? atomistic::BinScheme::kUniform
                                                     : atomistic::BinScheme::kQuantile;
    auto binning = atomistic::bin_values(r.d2min.d2min, o.d2min_bins, scheme);
    if (!binning) {
        return report(binning.error().with_context("--d2min-bins: D2_min"));
    }
    r.binning = std::move(*binning);
    auto bins = atomistic::bin_bond_breaking(r.breaking, r.d2min.d2min, r.binning);
    if (!bins) {
        return report(bins.error());
    }
    r.bins = std::move(*bins);
    // A fit that cannot be made (e.g. every bin without variance) is reported, not fatal.
    if (auto fit = atomistic::fit_bond_breaking(r.bins); fit) {
        r.fit = *fit;
    } else {
        r.fit_error = fit.error().message;
    }
    auto by_bin = atomistic::grouped_pair_distribution(def.box, def.position, r.binning.bin,
                                                       r.binning.size(), pd_options);
    if (!by_bin) {
        return report(by_bin.error());
    }
    r.by_bin = std::move(*by_bin);

    atomistic::BondOrientationOptions orientation;
    orientation.cutoff = r.cutoff;
    orientation.loading_axis = r.axis;
    orientation.n_bins = o.phi_bins;
    orientation.bond_set =
        o.bond_set == "tracked" ? atomistic::BondSet::kTracked : atomistic::BondSet::kOwn;
    orientation.type_pairs = *type_pairs;
    auto change = atomistic::bond_orientation_change(ref.box, ref.position, def.box, def.position,
                                                     ref.type, orientation);
    if (!change) {
        return report(change.error());
    }
    r.orientation = std::move(*change);

    // alpha from the change of g2: the reference's own l = 2 fluctuation (finite size, texture)
    // cancels; g0 of the deformed configuration is the regressor (SPEC 7, docs/atomistic.md).
    r.delta_g2 = r.pd_deformed.g2;
    for (std::size_t k = 0; k < r.delta_g2.size(); ++k) {
        r.delta_g2.value[k] -= r.pd_reference.g2.value[k];
        r.delta_g2.variance[k] += r.pd_reference.g2.variance[k];
    }
    // Default range: from where every r bin up to r_max holds pairs (an empty bin has no
    // variance, and the weighted fit of SPEC 7 is then undetermined).
    const auto& g0_def = r.pd_deformed.g0;
    std::size_t first_filled = g0_def.size();
    while (first_filled > 0 && g0_def.variance[first_filled - 1] > 0.0) {
        --first_filled;
    }
    r.r_fit_min =
        o.r_fit_min.value_or(g0_def.r_angstrom[std::min(first_filled, g0_def.size() - 1)]);
    r.r_fit_max = o.r_fit_max.value_or(r.pd_deformed.g0.r_angstrom.back());
    physics::AffineFitOptions fit_options;
    fit_options.nu = o.nu;
    fit_options.r_fit_min = r.r_fit_min;
    fit_options.r_fit_max = r.r_fit_max;
    // Like the bond fit, an alpha that cannot be fitted is reported (NaN and the reason in the
    // files, a warning here), not fatal: the per-atom and bond results still stand.
    if (auto alpha =
            physics::fit_alpha(r.pd_deformed.g0, r.delta_g2, fit_options, r.r_fit_min, r.r_fit_max);
        alpha) {
        r.alpha = *alpha;
        r.eps_aff = physics::eps_aff_from_alpha(alpha->slope, o.nu);
        r.eps_aff_stderr = std::abs(physics::eps_aff_from_alpha(alpha->stderr_value, o.nu));
    } else {
        r.alpha_error = "--r-fit-min/--r-fit-max: " + alpha.error().message;
        std::fprintf(stderr, "anisoflow md: warning: no alpha: %s\n", r.alpha_error.c_str());
    }

    const fs::path dir(o.out_dir);
    const std::string name = o.name.empty() ? fs::path(o.dumps.back()).stem().string() : o.name;
    const fs::path nxs = dir / (name + ".nxs");
    if (auto written = write_nexus(nxs, o, r); !written) {
        return report(written.error());
    }
    auto csvs = write_csvs(dir / name, r);
    if (!csvs) {
        return report(csvs.error());
    }

    const auto& a = r.axis;
    std::printf(
        "anisoflow md: %zu atoms; reference %s [snapshot %d, timestep %lld], deformed %s "
        "[snapshot %d, timestep %lld]; loading axis (%.3g, %.3g, %.3g)\n",
        ref.size(), r.reference.file.c_str(), r.reference.index,
        static_cast<long long>(ref.timestep), r.deformed.file.c_str(), r.deformed.index,
        static_cast<long long>(def.timestep), a[0], a[1], a[2]);
    if (r.first_minimum) {
        std::printf("  cutoff %.4g (first minimum of g(r) %.4g)\n", r.cutoff, *r.first_minimum);
    } else {
        std::printf("  cutoff %.4g (given)\n", r.cutoff);
    }
    std::printf(
        "  D2_min: median %.4g, max %.4g (length^2)\n", median(r.d2min.d2min),
        *std::max_element(r.d2min.d2min.begin(), r.d2min.d2min.end(), [](double x, double y) {
            return std::isfinite(y) && (!std::isfinite(x) || x < y);
        }));
    std::printf("  bonds %zu, broken %zu (%.2f %%)\n", r.breaking.total_bonds,
                r.breaking.total_broken,
                r.breaking.total_bonds > 0 ? 100.0 * static_cast<double>(r.breaking.total_broken) /
                                                 static_cast<double>(r.breaking.total_bonds)
                                           : 0.0);
    if (r.fit) {
        std::printf("  broken fraction = %.4g +- %.2g + (%.4g +- %.2g) D2_min, %zu %s bins\n",
                    r.fit->intercept, r.fit->intercept_stderr, r.fit->slope, r.fit->slope_stderr,
                    r.fit->n_points, o.d2min_binning.c_str());
    } else {
        std::printf("  broken fraction vs D2_min: no fit (%s)\n", r.fit_error.c_str());
    }
    const auto& ori = r.orientation;
    std::printf(
        "  Delta P(phi), %s bonds%s: %+.3g +- %.2g along the axis (phi < %.3g deg), %+.3g +- "
        "%.2g across it (phi > %.3g deg)\n",
        o.bond_set.c_str(), o.bond_types.empty() ? "" : " of the chosen types", ori.delta_p.front(),
        std::sqrt(ori.delta_p_variance.front()), ori.reference.phi_edges_deg[1], ori.delta_p.back(),
        std::sqrt(ori.delta_p_variance.back()),
        ori.reference.phi_edges_deg[ori.reference.phi_edges_deg.size() - 2]);
    if (r.alpha_error.empty()) {
        std::printf(
            "  alpha = %.4g +- %.2g over [%.3g, %.3g]; eps_aff = %.4g +- %.2g (nu = %.3g)\n",
            r.alpha.slope, r.alpha.stderr_value, r.r_fit_min, r.r_fit_max, r.eps_aff,
            r.eps_aff_stderr, o.nu);
    } else {
        std::printf("  alpha: no fit (%s)\n", r.alpha_error.c_str());
    }
    std::printf("  wrote %s and %zu CSV files (%s_*.csv)\n", nxs.string().c_str(), csvs->size(),
                (dir / name).string().c_str());
    return 0;
}

}  // namespace anisoflow::app
