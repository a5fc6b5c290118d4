// The shared reference frame integrated by pyFAI 0.21.3 (SPEC 2): our cake and I(Q) must agree
// with pyFAI's method of the same splitting kind within 0.5 % (median over populated cells,
// weighted by pixel count).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <hdf5.h>

#include "anisoflow/geometry/detector_geometry.hpp"
#include "anisoflow/io/frame_source.hpp"
#include "anisoflow/io/mask.hpp"
#include "anisoflow/io/poni_file.hpp"
#include "anisoflow/reduce/cake_integrator.hpp"
#include "anisoflow/testing/test_paths.hpp"

namespace anisoflow::reduce {
namespace {

// SPEC 2: agreement within 0.5 % (weighted median over populated cells).
constexpr double kSpecMedianTolerance = 0.005;
// Settings recorded in pyfai_reference.h5's attributes.
constexpr double kDarkLevel = 100.0;
constexpr double kPolarizationFactor = 0.99;
constexpr double kQMin = 0.5;
constexpr double kQMax = 25.0;
constexpr std::size_t kNQ2d = 1000;
constexpr std::size_t kNChi = 72;
constexpr std::size_t kNQ1d = 2400;
// pyFAI computes its bin centres in float32 (relative rounding 6e-8, accumulated over the
// position arithmetic): allow a few float32 ulps, still a millionth of the range.
constexpr double kFloat32Relative = 4e-7;

std::vector<double> read_dataset(const std::string& file, const std::string& path) {
    std::vector<double> values;
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        return values;
    }
    const hid_t d = H5Dopen2(f, path.c_str(), H5P_DEFAULT);
    if (d >= 0) {
        const hid_t space = H5Dget_space(d);
        values.resize(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
        if (H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0) {
            values.clear();
        }
        H5Sclose(space);
        H5Dclose(d);
    }
    H5Fclose(f);
    return values;
}

// Median of |ours - ref| / |ref| over cells both sides populate, weighted by pixel count.
struct Agreement {
    double weighted_median = 1.0;
    std::size_t compared = 0;
    std::size_t empty_mismatch = 0;
};

Agreement compare(const std::vector<double>& ours, const std::vector<double>& count,
                  const std::vector<double>& reference) {
    std::vector<std::pair<double, double>> deviations;  // (relative deviation, weight)
    Agreement result;
    for (std::size_t i = 0; i < reference.size(); ++i) {
        const bool ref_empty = reference[i] == 0.0;  // pyFAI writes 0 in empty bins
        const bool our_empty = !(count[i] > 0.0);
        if (ref_empty != our_empty) {
            ++result.empty_mismatch;
        }
        if (ref_empty || our_empty) {
            continue;
        }
        deviations.emplace_back(std::abs(ours[i] - reference[i]) / std::abs(reference[i]),
                                count[i]);
    }
    std::sort(deviations.begin(), deviations.end());
    double total = 0.0;
    for (const auto& d : deviations) {
        total += d.second;
    }
    double running = 0.0;
    for (const auto& d : deviations) {
        running += d.second;
        if (running >= 0.5 * total) {
            result.weighted_median = d.first;
            break;
        }
    }
    result.compared = deviations.size();
    return result;
}

struct ReferenceCase {
    std::string pyfai_method;
    PixelSplitting splitting;
};

class PyfaiIntegrationReference : public ::testing::TestWithParam<ReferenceCase> {
  protected:
    static void SetUpTestSuite() {
        const auto dir = testing::reference_dir() / "integration";
        auto poni = io::read_poni_file(dir / "geometry.poni");
        ASSERT_TRUE(poni.has_value()) << poni.error().message;
        geometry_ = new geometry::DetectorGeometry(poni->geometry);
        auto source = io::open_frame_source((dir / "frame.h5").string());
        ASSERT_TRUE(source.has_value()) << source.error().message;
        auto frame = (*source)->read_frame(0);
        ASSERT_TRUE(frame.has_value()) << frame.error().message;
        frame_ = new Frame(std::move(*frame));
        auto mask =
            io::read_mask((dir / "frame.h5").string() + "::/entry/instrument/detector/pixel_mask",
                          geometry_->shape());
        ASSERT_TRUE(mask.has_value()) << mask.error().message;
        mask_ = new std::vector<std::uint8_t>(std::move(*mask));
    }
    static void TearDownTestSuite() {
        delete geometry_;
        delete frame_;
        delete mask_;
    }
    static Cake integrate(PixelSplitting splitting, std::size_t n_q) {
        DetectorCorrections corrections;
        corrections.dark_counts.assign(geometry_->shape().pixel_count(),
                                       static_cast<float>(kDarkLevel));
        corrections.mask = *mask_;
        corrections.polarization_factor = kPolarizationFactor;
        const CakeAxes axes{n_q, kNChi, kQMin, kQMax};
        auto integrator = CakeIntegrator::create(*geometry_, {axes, splitting, 2}, corrections);
        EXPECT_TRUE(integrator.has_value());
        auto cake = integrator->integrate(frame_->view());
        EXPECT_TRUE(cake.has_value());
        return std::move(*cake);
    }
    static std::string reference_file() {
        return (testing::reference_dir() / "integration" / "pyfai_reference.h5").string();
    }

    static inline geometry::DetectorGeometry* geometry_ = nullptr;
    static inline Frame* frame_ = nullptr;
    static inline std::vector<std::uint8_t>* mask_ = nullptr;
};

TEST_P(PyfaiIntegrationReference, CakeAgreesWithPyfaiIntegrate2d) {
    ASSERT_NE(frame_, nullptr);
    const ReferenceCase& c = GetParam();
    const Cake cake = integrate(c.splitting, kNQ2d);
    const auto reference = read_dataset(reference_file(), "/" + c.pyfai_method + "/i_2d");
    const auto q = read_dataset(reference_file(), "/" + c.pyfai_method + "/q_2d");
    const auto chi = read_dataset(reference_file(), "/" + c.pyfai_method + "/chi_2d_deg");
    ASSERT_EQ(reference.size(), kNChi * kNQ2d);
    ASSERT_EQ(q.size(), kNQ2d);
    ASSERT_EQ(chi.size(), kNChi);
    // Same bin layout: pyFAI's bin centres within float rounding (its chi range is the pixels'
    // own span, a few 1e-5 deg inside [-180, 180]).
    for (std::size_t i = 0; i < kNQ2d; ++i) {
        ASSERT_NEAR(cake.q_inv_angstrom[i], q[i], kFloat32Relative * q[i]);
    }
    for (std::size_t i = 0; i < kNChi; ++i) {
        ASSERT_NEAR(cake.chi_deg[i], chi[i], 1e-3);
    }
    const Agreement agreement = compare(cake.intensity, cake.count, reference);
    std::cout << "[ pyFAI ] " << c.pyfai_method << " 2D: weighted median deviation "
              << agreement.weighted_median << " over " << agreement.compared
              << " cells, empty-cell mismatches " << agreement.empty_mismatch << "\n";
    EXPECT_LT(agreement.weighted_median, kSpecMedianTolerance);
    EXPECT_GT(agreement.compared, reference.size() * 9 / 10);
    // The same cells are empty on both sides but for a handful on the range edges.
    EXPECT_LT(agreement.empty_mismatch, reference.size() / 200);
}

TEST_P(PyfaiIntegrationReference, AzimuthalAverageAgreesWithPyfaiIntegrate1d) {
    ASSERT_NE(frame_, nullptr);
    const ReferenceCase& c = GetParam();
    const Cake cake = integrate(c.splitting, kNQ1d);
    const auto reference = read_dataset(reference_file(), "/" + c.pyfai_method + "/i_1d");
    const auto q = read_dataset(reference_file(), "/" + c.pyfai_method + "/q_1d");
    ASSERT_EQ(reference.size(), kNQ1d);
    for (std::size_t i = 0; i < kNQ1d; ++i) {
        ASSERT_NEAR(cake.q_inv_angstrom[i], q[i], kFloat32Relative * q[i]);
    }
    const Agreement agreement = compare(cake.intensity_1d, cake.count_1d, reference);
    std::cout << "[ pyFAI ] " << c.pyfai_method << " 1D: weighted median deviation "
              << agreement.weighted_median << " over " << agreement.compared << " bins\n";
    EXPECT_LT(agreement.weighted_median, kSpecMedianTolerance);
    EXPECT_GT(agreement.compared, kNQ1d * 9 / 10);
}

INSTANTIATE_TEST_SUITE_P(SharedReference, PyfaiIntegrationReference,
                         ::testing::Values(ReferenceCase{"no_histogram", PixelSplitting::kNone},
                                           ReferenceCase{"bbox_csr", PixelSplitting::kBoundingBox}),
                         [](const auto& param_info) { return param_info.param.pyfai_method; });

}  // namespace
}  // namespace anisoflow::reduce
