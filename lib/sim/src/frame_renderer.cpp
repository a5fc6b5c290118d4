#include "anisoflow/sim/frame_renderer.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <random>

namespace anisoflow::sim {

namespace {

// Counts (dark included) as the frame settings.pixel_output asks for: a detector's uint16,
// rounded and clipped at 0 and at saturation, or the float32 values unclipped.
Frame to_frame(FrameShape shape, const std::vector<double>& counts,
               const RenderSettings& settings) {
    if (settings.pixel_output == PixelOutput::kFloat32Expected) {
        std::vector<float> pixels(counts.size());
        std::transform(counts.begin(), counts.end(), pixels.begin(),
                       [](double value) { return static_cast<float>(value); });
        return Frame::from_vector(shape, std::move(pixels));
    }
    const double ceiling = std::min(settings.saturation_counts, 65535.0);
    std::vector<std::uint16_t> pixels(counts.size());
    std::transform(counts.begin(), counts.end(), pixels.begin(), [ceiling](double value) {
        return static_cast<std::uint16_t>(std::clamp(std::round(value), 0.0, ceiling));
    });
    return Frame::from_vector(shape, std::move(pixels));
}

}  // namespace

Result<FrameRenderer> FrameRenderer::create(const geometry::DetectorGeometry& geometry,
                                            AtomicTermsTable atomic_terms,
                                            std::vector<float> flat) {
    const std::size_t n = atomic_terms.q_inv_angstrom.size();
    if (n < 2 || atomic_terms.mean_f_squared.size() != n ||
        atomic_terms.mean_squared_f.size() != n || atomic_terms.compton.size() != n) {
        return fail(ErrorCode::kInvalidArgument,
                    "atomic terms need at least 2 samples and equal lengths (q {}, <f>^2 {}, "
                    "<f^2> {}, C {})",
                    n, atomic_terms.mean_f_squared.size(), atomic_terms.mean_squared_f.size(),
                    atomic_terms.compton.size());
    }
    if (!std::is_sorted(atomic_terms.q_inv_angstrom.begin(), atomic_terms.q_inv_angstrom.end())) {
        return fail(ErrorCode::kInvalidArgument, "atomic terms: the Q grid is not ascending");
    }
    const FrameShape shape = geometry.shape();
    if (!flat.empty() && flat.size() != shape.pixel_count()) {
        return fail(ErrorCode::kInvalidArgument, "flat has {} pixels but the detector has {}",
                    flat.size(), shape.pixel_count());
    }
    FrameRenderer renderer;
    renderer.shape_ = shape;
    renderer.atomic_ = std::move(atomic_terms);
    renderer.flat_ = std::move(flat);
    const std::size_t pixels = shape.pixel_count();
    renderer.q_.resize(pixels);
    renderer.cos_theta_.resize(pixels);
    renderer.chi_rad_.resize(pixels);
    renderer.two_theta_.resize(pixels);
    renderer.solid_angle_.resize(pixels);
    for (std::size_t row = 0; row < shape.rows; ++row) {
        for (std::size_t col = 0; col < shape.cols; ++col) {
            const std::size_t i = row * shape.cols + col;
            const auto angles = geometry.pixel_centre(row, col);
            renderer.two_theta_[i] = angles.two_theta_rad;
            renderer.chi_rad_[i] = angles.chi_rad;
            renderer.q_[i] = geometry.q_inv_angstrom(angles.two_theta_rad);
            renderer.cos_theta_[i] = std::cos(0.5 * angles.two_theta_rad);
            renderer.solid_angle_[i] = geometry.solid_angle(row, col);
        }
    }
    return renderer;
}

double FrameRenderer::interpolate(const std::vector<double>& values, double q) const {
    const auto& grid = atomic_.q_inv_angstrom;
    if (q <= grid.front()) {
        return values.front();
    }
    if (q >= grid.back()) {
        return values.back();
    }
    const auto upper = std::upper_bound(grid.begin(), grid.end(), q);
    const auto k = static_cast<std::size_t>(upper - grid.begin());
    const double t = (q - grid[k - 1]) / (grid[k] - grid[k - 1]);
    return values[k - 1] + t * (values[k] - values[k - 1]);
}

std::vector<double> FrameRenderer::expected_signal(const HardSphereStructure& structure,
                                                   const RenderSettings& settings) const {
    return expected_signal(StrainedStructure::affine(structure, settings.strain), settings);
}

std::vector<double> FrameRenderer::expected_signal(const StrainedStructure& structure,
                                                   const RenderSettings& settings) const {
    // Orientation N is P rotated 90 deg about the beam: its axis sits at chi_L + 90 (SPEC 3).
    const double axis_deg =
        settings.loading_axis_chi_deg + (settings.orientation == Orientation::kN ? 90.0 : 0.0);
    const double axis_rad = axis_deg * std::numbers::pi / 180.0;
    std::vector<double> signal(q_.size());
    for (std::size_t i = 0; i < q_.size(); ++i) {
        // The scattering vector leaves the detector plane by theta: its in-plane part is
        // cos(theta) of it, along the pixel's azimuth chi.
        const double cos_psi = cos_theta_[i] * std::cos(chi_rad_[i] - axis_rad);
        const double s = structure.s(q_[i], cos_psi);
        const double q = q_[i];
        const double per_atom = interpolate(atomic_.mean_f_squared, q) * (s - 1.0) +
                                interpolate(atomic_.mean_squared_f, q) +
                                interpolate(atomic_.compton, q);
        const double polarization = geometry::DetectorGeometry::polarization(
            geometry::ScatteringAngles{two_theta_[i], chi_rad_[i]}, settings.polarization_factor);
        const double flat = flat_.empty() ? 1.0 : static_cast<double>(flat_[i]);
        signal[i] = settings.counts_scale * per_atom * solid_angle_[i] * polarization * flat;
    }
    return signal;
}

std::uint64_t frame_seed(std::uint64_t run_seed, FrameSeries series, std::size_t index) {
    // seed_seq scrambles all its inputs into every output word (a hash, not a sum).
    std::seed_seq sequence{static_cast<std::uint32_t>(run_seed),
                           static_cast<std::uint32_t>(run_seed >> 32U),
                           static_cast<std::uint32_t>(series), static_cast<std::uint32_t>(index),
                           static_cast<std::uint32_t>(static_cast<std::uint64_t>(index) >> 32U)};
    std::array<std::uint32_t, 2> words{};
    sequence.generate(words.begin(), words.end());
    return (static_cast<std::uint64_t>(words[0]) << 32U) | words[1];
}

Frame FrameRenderer::render_dark(const RenderSettings& settings) const {
    std::mt19937_64 rng(settings.seed);
    std::normal_distribution<double> read_noise(0.0, std::max(settings.read_noise_counts, 0.0));
    std::vector<double> counts(shape_.pixel_count(), settings.dark_counts);
    if (settings.read_noise_counts > 0.0) {
        for (double& value : counts) {
            value += read_noise(rng);
        }
    }
    return to_frame(shape_, counts, settings);
}

Result<Frame> FrameRenderer::render(const HardSphereStructure& structure,
                                    const RenderSettings& settings) const {
    return render(StrainedStructure::affine(structure, settings.strain), settings);
}

Result<Frame> FrameRenderer::render(const StrainedStructure& structure,
                                    const RenderSettings& settings) const {
    if (!(settings.counts_scale > 0.0) || !(settings.saturation_counts > 0.0)) {
        return fail(ErrorCode::kInvalidArgument,
                    "counts scale {} and saturation {} must be positive", settings.counts_scale,
                    settings.saturation_counts);
    }
    if (settings.pixel_output == PixelOutput::kFloat32Expected && settings.poisson_noise) {
        return fail(ErrorCode::kInvalidArgument,
                    "float32 expected-count frames are for noiseless rendering: a first-order "
                    "model's negative expected counts have no Poisson law");
    }
    std::vector<double> counts = expected_signal(structure, settings);
    std::mt19937_64 rng(settings.seed);
    std::normal_distribution<double> read_noise(0.0, std::max(settings.read_noise_counts, 0.0));
    // A detector records no fewer than 0 photons: its frames clip a negative model intensity
    // there (below the dark). float32 expected-count frames keep it.
    const bool clip_photons = settings.pixel_output == PixelOutput::kUint16Counts;
    for (double& value : counts) {
        if (clip_photons) {
            value = std::max(value, 0.0);
        }
        if (settings.poisson_noise) {
            std::poisson_distribution<std::int64_t> photons(value);
            value = static_cast<double>(photons(rng));
        }
        value += settings.dark_counts;
        if (settings.read_noise_counts > 0.0) {
            value += read_noise(rng);
        }
    }
    return to_frame(shape_, counts, settings);
}

}  // namespace anisoflow::sim
