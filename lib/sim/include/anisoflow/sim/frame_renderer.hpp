#pragma once
// Forward model of detector frames (issue 3): what an area detector records from a strained
// glass at orientation P or N, with the same intensity model the analysis inverts (SPEC 5):
//   counts = K [<f>^2 (S(Q, psi) - 1) + <f^2> + C(Q)] x solid angle x polarization x flat + dark,
// then Poisson and read noise and saturation. psi follows from SPEC 3's cos(psi) =
// cos(theta) cos(chi - chi_L), derived in docs/physics.md from the scattering geometry. The
// structure is a StrainedStructure: exact affine, first-order radial/rotation (SPEC 4's
// S0 + sqrt5 S2 P2) or isotropic.

#include <cstdint>
#include <vector>

#include "anisoflow/core/frame.hpp"
#include "anisoflow/core/result.hpp"
#include "anisoflow/geometry/detector_geometry.hpp"
#include "anisoflow/sim/strained_structure.hpp"
#include "anisoflow/sim/structure_model.hpp"

namespace anisoflow::sim {

/// Per-atom scattering terms on an ascending Q grid (from lib/physics' scattering factors, or
/// any model in tests): linear interpolation between samples.
struct AtomicTermsTable {
    std::vector<double> q_inv_angstrom;
    std::vector<double> mean_f_squared;  ///< <f>^2
    std::vector<double> mean_squared_f;  ///< <f^2>
    std::vector<double> compton;         ///< C(Q)
};

enum class Orientation { kP, kN };

/// What a rendered frame holds.
enum class PixelOutput {
    /// What a detector records: uint16 counts, rounded, clipped at 0 and at saturation.
    kUint16Counts,
    /// float32 counts, not rounded, not clipped (read noise, if any, added unrounded). For
    /// noiseless validation of the analysis chain, which is linear in the counts: a first-order
    /// strain model can ask for S(Q, psi) < 0 (docs/physics-simulator.md, "Low-Q content"), and
    /// only unclipped frames carry that model to the analysis intact. render() refuses it with
    /// Poisson noise (a negative expected count has no Poisson law).
    kFloat32Expected,
};

/// Which series of a simulated run a frame belongs to (its own random stream).
enum class FrameSeries { kP, kN, kDark };

/// The seed of frame `index` of `series` in the run seeded `run_seed`: independent streams for
/// every (run, series, frame), so runs with nearby seeds share no noise. (Counting one seed up
/// per frame made run s+2's P frames run s's N frames: seed studies were correlated.)
std::uint64_t frame_seed(std::uint64_t run_seed, FrameSeries series, std::size_t index);

struct RenderSettings {
    double counts_scale = 1.0;          ///< K: counts per electron unit per relative solid angle
    double loading_axis_chi_deg = 0.0;  ///< pyFAI chi of the loading axis in orientation P
    Orientation orientation = Orientation::kP;
    /// Affine strain of the HardSphereStructure shorthands of render()/expected_signal() only;
    /// a StrainedStructure carries its own strain model.
    UniaxialStrain strain;
    double polarization_factor = 0.99;
    double dark_counts = 100.0;      ///< mean dark level added to every pixel
    double read_noise_counts = 0.0;  ///< Gaussian read noise, counts rms
    bool poisson_noise = true;
    double saturation_counts = 65535.0;  ///< counts clip here (uint16 detectors)
    PixelOutput pixel_output = PixelOutput::kUint16Counts;
    std::uint64_t seed = 1;
};

/// Renders frames for one detector geometry; per-pixel geometry is computed once.
class FrameRenderer {
  public:
    static Result<FrameRenderer> create(const geometry::DetectorGeometry& geometry,
                                        AtomicTermsTable atomic_terms,
                                        std::vector<float> flat = {});

    /// One frame of the given structure under the given settings (uint16 counts, or float32
    /// expected counts: settings.pixel_output).
    [[nodiscard]] Result<Frame> render(const StrainedStructure& structure,
                                       const RenderSettings& settings) const;
    /// Shorthand for the exact affine model with settings.strain (eps = 0: isotropic).
    [[nodiscard]] Result<Frame> render(const HardSphereStructure& structure,
                                       const RenderSettings& settings) const;
    /// A dark frame: the dark level with read noise only (no beam), same seed rules and pixel
    /// output as render().
    [[nodiscard]] Frame render_dark(const RenderSettings& settings) const;
    /// The noise-free expected counts above the dark (for tests): K [..] x sa x pol x flat.
    [[nodiscard]] std::vector<double> expected_signal(const StrainedStructure& structure,
                                                      const RenderSettings& settings) const;
    /// Shorthand for the exact affine model with settings.strain (eps = 0: isotropic).
    [[nodiscard]] std::vector<double> expected_signal(const HardSphereStructure& structure,
                                                      const RenderSettings& settings) const;

  private:
    [[nodiscard]] double interpolate(const std::vector<double>& values, double q) const;

    FrameShape shape_;
    AtomicTermsTable atomic_;
    std::vector<float> flat_;
    std::vector<double> q_;          ///< per pixel, 1/A
    std::vector<double> cos_theta_;  ///< per pixel
    std::vector<double> chi_rad_;    ///< per pixel, pyFAI chi
    std::vector<double> two_theta_;  ///< per pixel
    std::vector<double> solid_angle_;
};

}  // namespace anisoflow::sim
