// LAMMPS text dumps: round trips through text written here, and malformed dumps refused with the
// file and line named.

#include "anisoflow/atomistic/lammps_dump.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace anisoflow::atomistic {
namespace {

// %.17g round-trips doubles; scaled coordinates go through H and H^-1 (a few ulp of L ~ 20).
constexpr double kPositionTolerance = 1e-12;

struct Atoms {
    std::vector<std::int64_t> id;
    std::vector<int> type;
    std::vector<Vec3> x;
};

Atoms random_atoms(const Box& box, std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    Atoms a;
    for (std::size_t i = 0; i < n; ++i) {
        a.id.push_back(static_cast<std::int64_t>(1000 + 7 * i));
        a.type.push_back(static_cast<int>(1 + i % 3));
        a.x.push_back(box.from_reduced({u(rng), u(rng), u(rng)}));
    }
    return a;
}

// One snapshot as LAMMPS writes it: ids shuffled, box bounds of the tilted cell's bounding box.
std::string snapshot_text(std::int64_t step, const Box& box, double xy, double xz, double yz,
                          const Atoms& atoms, bool scaled) {
    const Vec3& o = box.origin();
    const Mat3& h = box.edges();
    std::string text =
        fmt::format("ITEM: TIMESTEP\n{}\nITEM: NUMBER OF ATOMS\n{}\n", step, atoms.id.size());
    const double xlo = o[0];
    const double xhi = o[0] + h[0];
    const double ylo = o[1];
    const double yhi = o[1] + h[4];
    if (box.triclinic()) {
        text += "ITEM: BOX BOUNDS xy xz yz pp pp pp\n";
        text += fmt::format("{:.17g} {:.17g} {:.17g}\n", xlo + std::min({0.0, xy, xz, xy + xz}),
                            xhi + std::max({0.0, xy, xz, xy + xz}), xy);
        text += fmt::format("{:.17g} {:.17g} {:.17g}\n", ylo + std::min(0.0, yz),
                            yhi + std::max(0.0, yz), xz);
        text += fmt::format("{:.17g} {:.17g} {:.17g}\n", o[2], o[2] + h[8], yz);
    } else {
        text += fmt::format(
            "ITEM: BOX BOUNDS pp pp pp\n{:.17g} {:.17g}\n{:.17g} {:.17g}\n"
            "{:.17g} {:.17g}\n",
            xlo, xhi, ylo, yhi, o[2], o[2] + h[8]);
    }
    text += scaled ? "ITEM: ATOMS id type xs ys zs\n" : "ITEM: ATOMS x y z type id\n";
    std::vector<std::size_t> order(atoms.id.size());
    for (std::size_t i = 0; i < order.size(); ++i) {
        order[i] = (i * 37) % order.size();  // 37 is coprime to the sizes used: a permutation
    }
    for (const std::size_t i : order) {
        const Vec3 v = scaled ? box.to_reduced(atoms.x[i]) : atoms.x[i];
        text += scaled ? fmt::format("{} {} {:.17g} {:.17g} {:.17g}\n", atoms.id[i], atoms.type[i],
                                     v[0], v[1], v[2])
                       : fmt::format("{:.17g} {:.17g} {:.17g} {} {}\n", v[0], v[1], v[2],
                                     atoms.type[i], atoms.id[i]);
    }
    return text;
}

void expect_snapshot(const Snapshot& s, std::int64_t step, const Box& box, const Atoms& atoms) {
    EXPECT_EQ(s.timestep, step);
    ASSERT_EQ(s.size(), atoms.id.size());
    for (std::size_t k = 0; k < 9; ++k) {
        EXPECT_NEAR(s.box.edges()[k], box.edges()[k], 1e-12) << "H entry " << k;
    }
    for (std::size_t k = 0; k < 3; ++k) {
        EXPECT_NEAR(s.box.origin()[k], box.origin()[k], 1e-12);
    }
    for (std::size_t i = 0; i < atoms.id.size(); ++i) {  // atoms.id ascends
        ASSERT_EQ(s.id[i], atoms.id[i]);
        EXPECT_EQ(s.type[i], atoms.type[i]);
        for (std::size_t k = 0; k < 3; ++k) {
            EXPECT_NEAR(s.position[i][k], atoms.x[i][k], kPositionTolerance);
        }
    }
}

TEST(LammpsDump, RoundTripsTwoOrthogonalSnapshotsScaledAndUnscaled) {
    auto box = Box::create({-10.0, -9.5, 0.25}, {20.0, 19.0, 21.5});
    ASSERT_TRUE(box);
    const Atoms first = random_atoms(*box, 50, 1);
    const Atoms second = random_atoms(*box, 50, 2);
    const std::string text = snapshot_text(0, *box, 0, 0, 0, first, false) +
                             snapshot_text(1000, *box, 0, 0, 0, second, true);
    auto snaps = parse_lammps_dump(text, "orthogonal.dump");
    ASSERT_TRUE(snaps) << snaps.error().message;
    ASSERT_EQ(snaps->size(), 2U);
    EXPECT_FALSE((*snaps)[0].box.triclinic());
    expect_snapshot((*snaps)[0], 0, *box, first);
    expect_snapshot((*snaps)[1], 1000, *box, second);
}

TEST(LammpsDump, RoundTripsTriclinicSnapshotsFromAFile) {
    const double xy = 2.5;
    const double xz = -1.5;
    const double yz = 0.75;
    auto box = Box::create({1.0, 2.0, 3.0}, {20.0, 18.0, 16.0}, xy, xz, yz);
    ASSERT_TRUE(box);
    const Atoms first = random_atoms(*box, 40, 3);
    const Atoms second = random_atoms(*box, 40, 4);
    const auto path =
        std::filesystem::temp_directory_path() / fmt::format("anisoflow_md_{}.dump", ::getpid());
    {
        std::ofstream out(path);
        out << snapshot_text(5, *box, xy, xz, yz, first, true) << "\n"
            << snapshot_text(6, *box, xy, xz, yz, second, false);
    }
    auto snaps = read_lammps_dump(path);
    std::filesystem::remove(path);
    ASSERT_TRUE(snaps) << snaps.error().message;
    ASSERT_EQ(snaps->size(), 2U);
    EXPECT_TRUE((*snaps)[0].box.triclinic());
    expect_snapshot((*snaps)[0], 5, *box, first);
    expect_snapshot((*snaps)[1], 6, *box, second);
}

TEST(LammpsDump, ReadsUnwrappedCoordinatesAsTheyAre) {
    const std::string text =
        "ITEM: TIMESTEP\n7\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS pp pp pp\n0 10\n0 10\n"
        "0 10\nITEM: ATOMS id xu yu zu vx\n2 -1.5 12.0 3 0.1\n1 1 2 3 0.2\n";
    auto snaps = parse_lammps_dump(text, "unwrapped.dump");
    ASSERT_TRUE(snaps) << snaps.error().message;
    const Snapshot& s = snaps->front();
    EXPECT_EQ(s.id, (std::vector<std::int64_t>{1, 2}));
    EXPECT_EQ(s.type, (std::vector<int>{1, 1}));
    EXPECT_EQ(s.position[1], (Vec3{-1.5, 12.0, 3.0}));
}

// Each malformed dump and the "file:line" its error must name.
struct Malformed {
    const char* what;
    std::string text;
    const char* where;
};

TEST(LammpsDump, RefusesMalformedDumpsNamingTheLine) {
    const std::string head = "ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n2\n";
    const std::string bounds = "ITEM: BOX BOUNDS pp pp pp\n0 10\n0 10\n0 10\n";
    const std::vector<Malformed> cases{
        {"no coordinates", head + bounds + "ITEM: ATOMS id type vx\n1 1 0\n2 1 0\n", "bad.dump:9"},
        {"not a number", head + bounds + "ITEM: ATOMS id type x y z\n1 1 0 0 0\n2 1 0 zz 0\n",
         "bad.dump:11"},
        {"short line", head + bounds + "ITEM: ATOMS id type x y z\n1 1 0 0 0\n2 1 0 0\n",
         "bad.dump:11"},
        {"truncated", head + bounds + "ITEM: ATOMS id type x y z\n1 1 0 0 0\n", "bad.dump:10"},
        {"fixed boundary", head + "ITEM: BOX BOUNDS pp ff pp\n0 10\n0 10\n0 10\n", "bad.dump:5"},
        {"bad bounds", head + "ITEM: BOX BOUNDS pp pp pp\n0 10\n0\n0 10\n", "bad.dump:7"},
        {"empty box", head + "ITEM: BOX BOUNDS pp pp pp\n0 10\n5 5\n0 10\n", "bad.dump:8"},
        {"no timestep", "ITEM: NUMBER OF ATOMS\n2\n", "bad.dump:1"},
        {"bad count", "ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n-2\n", "bad.dump:4"},
        {"duplicate id", head + bounds + "ITEM: ATOMS id x y z\n1 0 0 0\n1 1 1 1\n", "line 11"},
    };
    for (const auto& c : cases) {
        auto snaps = parse_lammps_dump(c.text, "bad.dump");
        ASSERT_FALSE(snaps) << c.what;
        EXPECT_NE(snaps.error().message.find(c.where), std::string::npos)
            << c.what << ": " << snaps.error().message;
    }
    auto missing = read_lammps_dump("/nonexistent/anisoflow.dump");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace anisoflow::atomistic
