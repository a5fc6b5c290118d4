// `anisoflow md` end to end: the real binary (ANISOFLOW_CLI) on the LAMMPS fixture of
// tests/data/atomistic (2000 atoms, two types, compression plus a shear inclusion); its NeXus
// file (read back with the HDF5 C API) and CSV files are compared with lib/atomistic called
// directly, and bad input must fail with the file or option named.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <hdf5.h>
#include <nlohmann/json.hpp>

#include "anisoflow/atomistic/bonds.hpp"
#include "anisoflow/atomistic/d2min.hpp"
#include "anisoflow/atomistic/lammps_dump.hpp"
#include "anisoflow/atomistic/pair_distribution.hpp"
#include "anisoflow/physics/affine_fit.hpp"
#include "anisoflow/testing/cli_runner.hpp"
#include "anisoflow/testing/test_paths.hpp"

namespace {

namespace fs = std::filesystem;
namespace at = anisoflow::atomistic;
using anisoflow::testing::describe;
using anisoflow::testing::run_cli;

const fs::path kFixtures = ANISOFLOW_MD_FIXTURE_DIR;
// The NeXus file holds the same doubles the library returns: only the order of floating-point
// sums could differ, and it does not (same code, same inputs).
constexpr double kSameDouble = 1e-12;
// CSV cells carry 12 significant digits.
constexpr double kCsvRelative = 1e-10;
// The fixture's strain (make_md_fixture.py): compression 2 % along z, nu = 0.37.
constexpr double kFixtureEps = 0.02;
constexpr double kFixtureNu = 0.37;
constexpr double kRStep = 0.05;
// Histograms to 6 A (2.4 diameters) rather than the default 10: the pair loops are most of the
// command's time, 4x less under AddressSanitizer.
constexpr double kRMax = 6.0;
constexpr std::size_t kBins = 4;
constexpr std::size_t kPhiBins = 9;
// Bin width of the g(r) behind the default cutoff, in mean atomic spacings (md_command.cpp).
constexpr double kMinimumStepSpacings = 0.04;

fs::path reference_dump() { return kFixtures / "reference.dump"; }
fs::path deformed_dump() { return kFixtures / "deformed.dump"; }

std::vector<double> read_doubles(hid_t file, const std::string& path) {
    const hid_t d = H5Dopen2(file, path.c_str(), H5P_DEFAULT);
    if (d < 0) {
        ADD_FAILURE() << "missing dataset " << path;
        return {};
    }
    const hid_t space = H5Dget_space(d);
    std::vector<double> v(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
    if (!v.empty()) {
        EXPECT_GE(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), 0);
    }
    H5Sclose(space);
    H5Dclose(d);
    return v;
}

std::vector<std::int64_t> read_integers(hid_t file, const std::string& path) {
    const hid_t d = H5Dopen2(file, path.c_str(), H5P_DEFAULT);
    if (d < 0) {
        ADD_FAILURE() << "missing dataset " << path;
        return {};
    }
    const hid_t space = H5Dget_space(d);
    std::vector<std::int64_t> v(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
    if (!v.empty()) {
        EXPECT_GE(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), 0);
    }
    H5Sclose(space);
    H5Dclose(d);
    return v;
}

std::string read_attribute(hid_t file, const std::string& object, const char* name) {
    const hid_t a = H5Aopen_by_name(file, object.c_str(), name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) {
        return "<missing>";
    }
    const hid_t type = H5Aget_type(a);
    std::string out = "<unreadable>";
    if (H5Tis_variable_str(type) > 0) {
        char* text = nullptr;
        if (H5Aread(a, type, &text) >= 0 && text != nullptr) {
            out = text;
            H5free_memory(text);
        }
    }
    H5Tclose(type);
    H5Aclose(a);
    return out;
}

// A CSV file as columns by header name.
struct Table {
    std::vector<std::string> header;
    std::map<std::string, std::vector<double>> column;
    std::size_t rows = 0;
};

Table read_csv(const fs::path& path) {
    Table t;
    std::ifstream in(path);
    std::string line;
    if (!std::getline(in, line)) {
        ADD_FAILURE() << "cannot read " << path;
        return t;
    }
    std::istringstream head(line);
    for (std::string cell; std::getline(head, cell, ',');) {
        t.header.push_back(cell);
    }
    while (std::getline(in, line)) {
        std::istringstream row(line);
        std::size_t k = 0;
        for (std::string cell; std::getline(row, cell, ','); ++k) {
            if (k < t.header.size()) {
                double v = std::nan("");
                try {
                    v = std::stod(cell);
                } catch (const std::exception&) {
                    // text cells (the summary's names and units) read as NaN
                }
                t.column[t.header[k]].push_back(v);
            }
        }
        ++t.rows;
    }
    return t;
}

void expect_close(const std::vector<double>& actual, const std::vector<double>& expected,
                  double relative, const std::string& what) {
    ASSERT_EQ(actual.size(), expected.size()) << what;
    for (std::size_t k = 0; k < actual.size(); ++k) {
        if (std::isnan(expected[k])) {
            EXPECT_TRUE(std::isnan(actual[k])) << what << "[" << k << "]";
            continue;
        }
        EXPECT_NEAR(actual[k], expected[k], relative * std::max(1.0, std::abs(expected[k])))
            << what << "[" << k << "]";
    }
}

std::vector<double> sqrt_of(const std::vector<double>& v) {
    std::vector<double> out(v.size());
    std::transform(v.begin(), v.end(), out.begin(), [](double x) { return std::sqrt(x); });
    return out;
}

// The value of a Result, or a test failure naming the step (and a default value).
template <class T>
T must(anisoflow::Result<T> result, const char* step) {
    if (!result) {
        ADD_FAILURE() << step << ": " << result.error().message;
        return T{};
    }
    return std::move(*result);
}

// The fixture analysed by the library, as `anisoflow md` with the arguments below does it.
struct Expected {
    at::Snapshot ref;
    at::Snapshot def;
    double cutoff = 0.0;
    at::PairDistribution pd_ref;
    at::PairDistribution pd_def;
    at::D2MinResult d2;
    at::BondBreaking breaking;
    at::Binning binning;
    std::vector<at::BondBreakingBin> bins;
    at::LinearFit fit;
    at::BondOrientationChange orientation;
    anisoflow::physics::SlopeFit alpha;
};

Expected analyse_fixture() {
    Expected e;
    auto ref = at::read_lammps_dump(reference_dump());
    auto def = at::read_lammps_dump(deformed_dump());
    if (!ref || !def) {
        ADD_FAILURE() << "cannot read the fixture";
        return e;
    }
    e.ref = ref->front();
    e.def = def->front();
    const double r_max = kRMax;
    const at::PairDistributionOptions o{r_max, kRStep, {0.0, 0.0, 1.0}};
    e.pd_ref = must(at::pair_distribution(e.ref.box, e.ref.position, o), "g(r) ref");
    e.pd_def = must(at::pair_distribution(e.def.box, e.def.position, o), "g(r) def");
    const double spacing = std::cbrt(e.ref.box.volume() / static_cast<double>(e.ref.size()));
    const auto coarse =
        must(at::pair_distribution(e.ref.box, e.ref.position,
                                   {r_max, kMinimumStepSpacings * spacing, o.loading_axis}),
             "coarse g(r)");
    e.cutoff = must(at::first_minimum(coarse.g0), "first minimum");
    e.d2 = must(at::compute_d2min(e.ref.box, e.ref.position, e.def.box, e.def.position, {e.cutoff}),
                "D2_min");
    e.breaking = must(at::compute_bond_breaking(e.ref.box, e.ref.position, e.def.box,
                                                e.def.position, {e.cutoff, 1.0}),
                      "bond breaking");
    e.binning = must(at::bin_values(e.d2.d2min, kBins, at::BinScheme::kQuantile), "bins");
    e.bins = must(at::bin_bond_breaking(e.breaking, e.d2.d2min, e.binning), "bin breaking");
    e.fit = must(at::fit_bond_breaking(e.bins), "fit");
    at::BondOrientationOptions bo;
    bo.cutoff = e.cutoff;
    bo.n_bins = kPhiBins;
    bo.bond_set = at::BondSet::kTracked;
    bo.type_pairs = {{1, 2}};
    e.orientation = must(at::bond_orientation_change(e.ref.box, e.ref.position, e.def.box,
                                                     e.def.position, e.ref.type, bo),
                         "Delta P");
    anisoflow::physics::RCurve delta = e.pd_def.g2;
    for (std::size_t k = 0; k < delta.size(); ++k) {
        delta.value[k] -= e.pd_ref.g2.value[k];
        delta.variance[k] += e.pd_ref.g2.variance[k];
    }
    std::size_t first = delta.size();
    while (first > 0 && e.pd_def.g0.variance[first - 1] > 0.0) {
        --first;
    }
    anisoflow::physics::AffineFitOptions fo;
    fo.nu = kFixtureNu;
    const double r_lo = e.pd_def.g0.r_angstrom[first];
    const double r_hi = e.pd_def.g0.r_angstrom.back();
    fo.r_fit_min = r_lo;
    fo.r_fit_max = r_hi;
    e.alpha = must(anisoflow::physics::fit_alpha(e.pd_def.g0, delta, fo, r_lo, r_hi), "alpha");
    return e;
}

std::vector<double> as_doubles(const std::vector<int>& v) { return {v.begin(), v.end()}; }

TEST(MdCli, WritesTheFixtureAnalysisAsTheLibraryComputesIt) {
    const fs::path dir = anisoflow::testing::scratch_dir();
    const auto run = run_cli(ANISOFLOW_CLI, dir,
                             {"md",
                              reference_dump().string(),
                              deformed_dump().string(),
                              "--nu",
                              "0.37",
                              "--axis",
                              "z",
                              "--r-step",
                              "0.05",
                              "--r-max",
                              "6",
                              "--d2min-bins",
                              "4",
                              "--phi-bins",
                              "9",
                              "--bond-types",
                              "1-2",
                              "--bond-set",
                              "tracked",
                              "--out",
                              (dir / "out").string(),
                              "--name",
                              "fixture"});
    ASSERT_EQ(run.exit_code, 0) << describe(run);
    EXPECT_NE(run.out.find("2000 atoms"), std::string::npos) << run.out;
    EXPECT_NE(run.out.find("alpha ="), std::string::npos) << run.out;
    EXPECT_NE(run.out.find("broken fraction"), std::string::npos) << run.out;

    const Expected e = analyse_fixture();
    const fs::path nxs = dir / "out" / "fixture.nxs";
    const hid_t file = H5Fopen(nxs.string().c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(file, 0) << nxs;
    EXPECT_EQ(read_attribute(file, "/entry", "NX_class"), "NXentry");
    EXPECT_EQ(read_attribute(file, "/entry/atoms", "NX_class"), "NXdata");
    EXPECT_EQ(read_attribute(file, "/entry/bond_orientation", "NX_class"), "NXdata");
    EXPECT_EQ(read_attribute(file, "/entry/affine_fit", "NX_class"), "NXparameters");
    EXPECT_EQ(read_attribute(file, "/entry/atoms/d2min", "units"), "angstrom^2");
    EXPECT_NE(read_attribute(file, "/entry/pair_distribution", "normalisation").find("sqrt5"),
              std::string::npos);

    // Parameters: the default cutoff is the first minimum of the reference g(r).
    const auto cutoff = read_doubles(file, "/entry/parameters/cutoff");
    ASSERT_EQ(cutoff.size(), 1U);
    EXPECT_NEAR(cutoff[0], e.cutoff, kSameDouble);
    // Contact at 2.5 A; the first minimum of an RSA packing is near 1.6 diameters.
    EXPECT_GT(e.cutoff, 3.5);
    EXPECT_LT(e.cutoff, 4.5);

    // Per atom.
    EXPECT_EQ(read_integers(file, "/entry/atoms/id"), e.ref.id);
    expect_close(read_doubles(file, "/entry/atoms/d2min"), e.d2.d2min, kSameDouble, "d2min");
    expect_close(read_doubles(file, "/entry/atoms/bond_fraction"), e.breaking.fraction, kSameDouble,
                 "bond_fraction");
    const auto affine = read_doubles(file, "/entry/atoms/affine");
    ASSERT_EQ(affine.size(), 9 * e.ref.size());
    constexpr std::size_t kAtom = 7;
    for (std::size_t k = 0; k < 9; ++k) {
        EXPECT_NEAR(affine[9 * kAtom + k], e.d2.affine[kAtom][k], kSameDouble);
    }

    // Global g0/g2 and the change of g2.
    expect_close(read_doubles(file, "/entry/pair_distribution/g2"), e.pd_def.g2.value, kSameDouble,
                 "g2");
    expect_close(read_doubles(file, "/entry/pair_distribution/g0_reference"), e.pd_ref.g0.value,
                 kSameDouble, "g0_reference");

    // g2 per D2_min bin averages back to the global g2 (quantile bins: equal atoms per bin).
    const auto g2_bins = read_doubles(file, "/entry/g2_by_d2min/g2");
    const std::size_t n_r = e.pd_def.g2.size();
    ASSERT_EQ(g2_bins.size(), kBins * n_r);
    for (std::size_t k = 0; k < n_r; k += 17) {
        double mean = 0.0;
        for (std::size_t b = 0; b < kBins; ++b) {
            mean += g2_bins[b * n_r + k] / static_cast<double>(kBins);
        }
        EXPECT_NEAR(mean, e.pd_def.g2.value[k], 1e-9) << "r bin " << k;
    }

    // Bond breaking bins and fit.
    std::vector<double> fraction;
    std::vector<double> fraction_err;
    for (const auto& b : e.bins) {
        fraction.push_back(b.fraction_mean);
        fraction_err.push_back(std::sqrt(b.fraction_variance));
    }
    expect_close(read_doubles(file, "/entry/bond_breaking/fraction"), fraction, kSameDouble,
                 "fraction");
    const auto slope = read_doubles(file, "/entry/bond_breaking_fit/slope");
    const auto intercept = read_doubles(file, "/entry/bond_breaking_fit/intercept_stderr");
    ASSERT_EQ(slope.size(), 1U);
    EXPECT_NEAR(slope[0], e.fit.slope, kSameDouble * std::abs(e.fit.slope));
    EXPECT_NEAR(intercept[0], e.fit.intercept_stderr, kSameDouble);
    // The fixture's inclusion: broken bonds where D2_min is high.
    EXPECT_GT(e.fit.slope, 3.0 * e.fit.slope_stderr);

    // Delta P(phi) of the 1-2 bonds.
    expect_close(read_doubles(file, "/entry/bond_orientation/delta_p"), e.orientation.delta_p,
                 kSameDouble, "delta_p");
    expect_close(read_doubles(file, "/entry/bond_orientation/delta_p_errors"),
                 sqrt_of(e.orientation.delta_p_variance), kSameDouble, "delta_p_errors");

    // alpha from the change of g2; the fixture's eps_aff (2 %) within 3 standard errors.
    const auto alpha = read_doubles(file, "/entry/affine_fit/alpha");
    const auto eps = read_doubles(file, "/entry/affine_fit/eps_aff");
    const auto eps_err = read_doubles(file, "/entry/affine_fit/eps_aff_stderr");
    ASSERT_EQ(alpha.size(), 1U);
    EXPECT_NEAR(alpha[0], e.alpha.slope, kSameDouble);
    EXPECT_NEAR(eps[0], kFixtureEps, 3.0 * eps_err[0]);
    H5Fclose(file);

    // The CSV tables hold the same numbers.
    const Table atoms = read_csv(dir / "out" / "fixture_atoms.csv");
    ASSERT_EQ(atoms.rows, e.ref.size());
    expect_close(atoms.column.at("d2min_angstrom2"), e.d2.d2min, kCsvRelative, "csv d2min");
    expect_close(atoms.column.at("broken_bonds"), as_doubles(e.breaking.broken), 0.0, "csv broken");
    const Table bb = read_csv(dir / "out" / "fixture_bond_breaking.csv");
    expect_close(bb.column.at("fraction"), fraction, kCsvRelative, "csv fraction");
    expect_close(bb.column.at("fraction_err"), fraction_err, kCsvRelative, "csv fraction_err");
    const Table fit = read_csv(dir / "out" / "fixture_bond_breaking_fit.csv");
    expect_close(fit.column.at("slope_per_angstrom2"), {e.fit.slope}, kCsvRelative, "csv slope");
    expect_close(fit.column.at("intercept"), {e.fit.intercept}, kCsvRelative, "csv intercept");
    const Table bo = read_csv(dir / "out" / "fixture_bond_orientation.csv");
    expect_close(bo.column.at("delta_p"), e.orientation.delta_p, kCsvRelative, "csv delta_p");
    expect_close(bo.column.at("p_reference"), e.orientation.reference.p, kCsvRelative,
                 "csv p_reference");
    const Table pd = read_csv(dir / "out" / "fixture_pair_distribution.csv");
    expect_close(pd.column.at("g2"), e.pd_def.g2.value, kCsvRelative, "csv g2");
    const Table gb = read_csv(dir / "out" / "fixture_g2_by_d2min.csv");
    EXPECT_EQ(gb.rows, kBins * n_r);
    const Table summary = read_csv(dir / "out" / "fixture_summary.csv");
    EXPECT_EQ(summary.header, (std::vector<std::string>{"quantity", "value", "stderr", "unit"}));
}

TEST(MdCli, OneDumpWithTwoSnapshotsGivesTheSameResultAsTwoDumps) {
    const fs::path dir = anisoflow::testing::scratch_dir();
    const fs::path both = dir / "both.dump";
    {
        std::ofstream out(both);
        out << anisoflow::testing::read_text(reference_dump())
            << anisoflow::testing::read_text(deformed_dump());
    }
    const std::vector<std::string> common{"--nu",    "0.37", "--r-step",     "0.05",
                                          "--r-max", "6",    "--d2min-bins", "3"};
    const auto two = run_cli(
        ANISOFLOW_CLI, dir,
        anisoflow::testing::concat({"md", reference_dump().string(), deformed_dump().string(),
                                    "--out", (dir / "two").string(), "--name", "r"},
                                   common));
    ASSERT_EQ(two.exit_code, 0) << describe(two);
    const auto one = run_cli(
        ANISOFLOW_CLI, dir,
        anisoflow::testing::concat({"md", both.string(), "--out", (dir / "one").string()}, common));
    ASSERT_EQ(one.exit_code, 0) << describe(one);
    // The default name is the dump's stem; the default frames its first and last snapshots.
    const Table a = read_csv(dir / "two" / "r_atoms.csv");
    const Table b = read_csv(dir / "one" / "both_atoms.csv");
    ASSERT_EQ(a.rows, 2000U);
    expect_close(b.column.at("d2min_angstrom2"), a.column.at("d2min_angstrom2"), 0.0, "d2min");
    expect_close(b.column.at("bond_fraction"), a.column.at("bond_fraction"), 0.0, "fraction");

    const auto same = run_cli(ANISOFLOW_CLI, dir,
                              {"md", both.string(), "--nu", "0.37", "--deformed-frame", "0",
                               "--out", (dir / "same").string()});
    EXPECT_NE(same.exit_code, 0);
    EXPECT_NE(same.err.find("both select snapshot 0"), std::string::npos) << describe(same);
}

TEST(MdCli, RefusesBadInputNamingTheFileOrTheOption) {
    const fs::path dir = anisoflow::testing::scratch_dir();
    const std::string ref = reference_dump().string();
    const std::string def = deformed_dump().string();
    const std::string out = (dir / "out").string();
    const fs::path truncated = dir / "truncated.dump";
    {
        std::ofstream t(truncated);
        t << anisoflow::testing::read_text(deformed_dump()).substr(0, 3000);
    }
    struct Case {
        std::vector<std::string> args;
        std::string named;
    };
    const std::vector<Case> cases{
        {{"md", (dir / "missing.dump").string(), def, "--nu", "0.3", "--out", out}, "missing.dump"},
        {{"md", ref, truncated.string(), "--nu", "0.3", "--out", out}, "truncated.dump:"},
        {{"md", ref, def, "--nu", "0.3", "--axis", "q", "--out", out}, "--axis"},
        {{"md", ref, def, "--nu", "0.3", "--bond-types", "1-3", "--out", out}, "--bond-types"},
        {{"md", ref, def, "--nu", "0.3", "--bond-types", "one", "--out", out}, "--bond-types"},
        {{"md", ref, def, "--nu", "0.3", "--cutoff", "30", "--out", out}, "--cutoff"},
        {{"md", ref, def, "--nu", "0.3", "--break-factor", "0.5", "--out", out}, "--break-factor"},
        {{"md", ref, def, "--nu", "0.7", "--out", out}, "--nu"},
        {{"md", ref, def, "--nu", "0.3", "--r-fit-max", "40", "--out", out}, "--r-fit-max"},
        {{"md", ref, "--nu", "0.3", "--out", out}, "one snapshot"},
        {{"md", ref, def, "--nu", "0.3", "--deformed-frame", "2", "--out", out},
         "--deformed-frame"},
    };
    for (const Case& c : cases) {
        // Short histograms: the cases refused after them stay quick under AddressSanitizer.
        const auto run =
            run_cli(ANISOFLOW_CLI, dir, anisoflow::testing::concat(c.args, {"--r-max", "6"}));
        EXPECT_NE(run.exit_code, 0) << describe(run);
        EXPECT_NE(run.exit_code, -1) << "crashed: " << describe(run);
        EXPECT_NE(run.err.find(c.named), std::string::npos) << describe(run);
    }
    EXPECT_FALSE(fs::exists(dir / "out" / "deformed.nxs"));
}

// The atoms' two routes to alpha (issue 7, deliverable 2): `anisoflow md` fits g2 from the
// pairs, `simulate --from-md` draws detector frames from their diffraction and `analyze` runs on
// them unchanged. Both must see the fixture's compression (bond stretching, alpha > 0) and agree
// within the pairs' noise (2000 atoms: ~40 % on alpha).
TEST(MdCli, FramesDrawnFromTheAtomsGiveTheAlphaOfTheirPairs) {
    const fs::path dir = anisoflow::testing::scratch_dir();
    const std::string ref = (kFixtures / "reference.dump").string();
    const std::string def = (kFixtures / "deformed.dump").string();
    const auto md = run_cli(
        ANISOFLOW_CLI, dir,
        {"md", ref, def, "--nu", "0.37", "--r-step", "0.05", "--out", (dir / "md").string()});
    ASSERT_EQ(md.exit_code, 0) << describe(md);
    double md_alpha = 0.0;
    double md_stderr = 0.0;
    {
        const auto at = md.out.find("alpha = ");
        ASSERT_NE(at, std::string::npos) << md.out;
        std::istringstream line(md.out.substr(at + 8));
        std::string plus_minus;
        line >> md_alpha >> plus_minus >> md_stderr;
        ASSERT_EQ(plus_minus, "+-") << md.out;
    }
    ASSERT_GT(md_stderr, 0.0);

    const fs::path sim = dir / "sim";
    const auto simulated =
        run_cli(ANISOFLOW_CLI, dir,
                {"--log-level", "warn",    "simulate", "--out-dir",  sim.string(), "--rows",
                 "128",         "--cols",  "128",      "--distance", "0.15",       "--frames",
                 "2",           "--darks", "1",        "--seed",     "5",          "--noiseless",
                 "--from-md",   ref,       def,        "--md-grid",  "64"});
    ASSERT_EQ(simulated.exit_code, 0) << describe(simulated);
    std::ifstream simulation_file(sim / "simulation.json");
    const nlohmann::json simulation = nlohmann::json::parse(simulation_file);
    EXPECT_EQ(simulation["mode"], "md");
    // The number density analyze needs, as the simulator recorded it.
    ASSERT_TRUE(simulation["md"]["number_density_per_cubic_angstrom"].is_number())
        << simulation.dump();
    const double density = simulation["md"]["number_density_per_cubic_angstrom"].get<double>();
    auto deformed = anisoflow::atomistic::read_lammps_dump(def);
    ASSERT_TRUE(deformed.has_value()) << deformed.error().message;
    EXPECT_NEAR(density, 2000.0 / deformed->back().box.volume(), 1e-6 * density);

    const auto analyzed = run_cli(ANISOFLOW_CLI, dir,
                                  {"--log-level",
                                   "warn",
                                   "analyze",
                                   "--poni",
                                   (sim / "geometry.poni").string(),
                                   "--p",
                                   (sim / "p.h5").string(),
                                   "--n",
                                   (sim / "n.h5").string(),
                                   "--dark",
                                   (sim / "dark.h5").string(),
                                   "--flat",
                                   (sim / "flat.h5").string(),
                                   "--composition",
                                   "Zr",
                                   "--density",
                                   std::to_string(density),
                                   "--nu",
                                   "0.37",
                                   "--loading-axis-chi",
                                   "0",
                                   "--out",
                                   (dir / "RESULT.h5").string(),
                                   "--json",
                                   (dir / "SUMMARY.json").string()});
    ASSERT_EQ(analyzed.exit_code, 0) << describe(analyzed);
    std::ifstream summary_file(dir / "SUMMARY.json");
    const nlohmann::json summary = nlohmann::json::parse(summary_file);
    ASSERT_TRUE(summary["alpha"].is_number()) << summary.dump();
    const double frames_alpha = summary["alpha"].get<double>();
    EXPECT_EQ(summary["mechanism"], "bond-stretching") << summary.dump();
    EXPECT_GT(md_alpha, 0.0);
    EXPECT_GT(frames_alpha, 0.0);
    EXPECT_NEAR(frames_alpha, md_alpha, 2.0 * md_stderr)
        << "frames " << frames_alpha << ", pairs " << md_alpha << " +- " << md_stderr;
}

}  // namespace
