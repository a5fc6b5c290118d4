#include "anisoflow/transport/experiment.hpp"

#include <cmath>
#include <cstdint>
#include <utility>

#include <fmt/format.h>

namespace anisoflow::transport {

pb::PoniGeometry to_message(const geometry::PoniGeometry& poni) {
    pb::PoniGeometry g;
    g.set_distance_m(poni.distance_m);
    g.set_poni1_m(poni.poni1_m);
    g.set_poni2_m(poni.poni2_m);
    g.set_rot1_rad(poni.rot1_rad);
    g.set_rot2_rad(poni.rot2_rad);
    g.set_rot3_rad(poni.rot3_rad);
    g.set_wavelength_m(poni.wavelength_m);
    g.set_pixel1_m(poni.detector.pixel1_m);
    g.set_pixel2_m(poni.detector.pixel2_m);
    g.set_detector_rows(static_cast<std::uint32_t>(poni.detector.max_shape.rows));
    g.set_detector_cols(static_cast<std::uint32_t>(poni.detector.max_shape.cols));
    g.set_detector_type(poni.detector.name);
    return g;
}

geometry::PoniGeometry to_poni(const pb::PoniGeometry& g) {
    geometry::PoniGeometry poni;
    poni.detector = geometry::DetectorModel{g.detector_type(), g.pixel1_m(), g.pixel2_m(),
                                            FrameShape{g.detector_rows(), g.detector_cols()}};
    poni.distance_m = g.distance_m();
    poni.poni1_m = g.poni1_m();
    poni.poni2_m = g.poni2_m();
    poni.rot1_rad = g.rot1_rad();
    poni.rot2_rad = g.rot2_rad();
    poni.rot3_rad = g.rot3_rad();
    poni.wavelength_m = g.wavelength_m();
    return poni;
}

namespace {

// Collects "field is value, must be ..." lines.
class Problems {
  public:
    void positive(const char* field, double value) {
        if (!(std::isfinite(value) && value > 0.0)) {
            lines_.push_back(fmt::format("{} is {}, must be > 0", field, value));
        }
    }
    void finite(const char* field, double value) {
        if (!std::isfinite(value)) {
            lines_.push_back(fmt::format("{} is {}, must be finite", field, value));
        }
    }
    void check(bool ok, std::string line) {
        if (!ok) {
            lines_.push_back(std::move(line));
        }
    }
    std::vector<std::string> take() { return std::move(lines_); }

  private:
    std::vector<std::string> lines_;
};

}  // namespace

std::vector<std::string> experiment_problems(const pb::ExperimentConfig& c) {
    Problems p;
    const pb::PoniGeometry& g = c.geometry();
    p.positive("geometry.distance_m", g.distance_m());
    p.positive("geometry.wavelength_m", g.wavelength_m());
    p.positive("geometry.pixel1_m", g.pixel1_m());
    p.positive("geometry.pixel2_m", g.pixel2_m());
    p.finite("geometry.poni1_m", g.poni1_m());
    p.finite("geometry.poni2_m", g.poni2_m());
    p.finite("geometry.rot1_rad", g.rot1_rad());
    p.finite("geometry.rot2_rad", g.rot2_rad());
    p.finite("geometry.rot3_rad", g.rot3_rad());
    p.check(g.detector_rows() > 0 && g.detector_cols() > 0,
            fmt::format("geometry.detector_rows x detector_cols is {}x{}, must be > 0",
                        g.detector_rows(), g.detector_cols()));
    p.check(!c.composition().empty(), "composition is empty");
    p.positive("density_per_cubic_angstrom", c.density_per_cubic_angstrom());
    p.check(c.nu() > -1.0 && c.nu() < 0.5, fmt::format("nu is {}, must be in (-1, 0.5)", c.nu()));
    p.finite("loading_axis_chi_deg", c.loading_axis_chi_deg());
    p.check(c.mode() == pb::EXTRACTION_MODE_PN || c.mode() == pb::EXTRACTION_MODE_SINGLE,
            "mode is unset: pn or single");
    p.check(c.normalisation() == pb::NORMALISATION_HIGH_Q ||
                c.normalisation() == pb::NORMALISATION_ADHOC,
            "normalisation is unset: high_q or adhoc");
    p.check(
        c.q_min_inv_angstrom() >= 0.0 && c.q_max_inv_angstrom() > c.q_min_inv_angstrom(),
        fmt::format("q_min_inv_angstrom, q_max_inv_angstrom are {}, {}: need 0 <= q_min < q_max",
                    c.q_min_inv_angstrom(), c.q_max_inv_angstrom()));
    p.check(c.n_q() > 0, "n_q is 0, must be > 0");
    p.check(c.n_chi() > 0, "n_chi is 0, must be > 0");
    p.positive("r_max_angstrom", c.r_max_angstrom());
    p.check(c.n_r() > 0, "n_r is 0, must be > 0");
    p.check(c.r_fit_min_angstrom() >= 0.0 && c.r_fit_max_angstrom() > c.r_fit_min_angstrom(),
            fmt::format("r_fit_min_angstrom, r_fit_max_angstrom are {}, {}: need 0 <= min < max",
                        c.r_fit_min_angstrom(), c.r_fit_max_angstrom()));
    p.check(c.polarization_factor() >= -1.0 && c.polarization_factor() <= 1.0,
            fmt::format("polarization_factor is {}, must be in [-1, 1]", c.polarization_factor()));
    return p.take();
}

}  // namespace anisoflow::transport
