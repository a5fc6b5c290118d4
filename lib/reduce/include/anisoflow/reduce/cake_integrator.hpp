#pragma once
// 2D integration of detector frames into (Q, chi) cakes (SPEC 2) through a lookup table built
// once per geometry. Two splitting kinds: kNone (each pixel centre falls in one cell, pyFAI's
// "no splitting / histogram") and kBoundingBox (each pixel is spread over the cells its (Q, chi)
// bounding box overlaps, pyFAI's "bbox"). See docs/reduction.md for the lookup layout.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "anisoflow/core/frame.hpp"
#include "anisoflow/core/result.hpp"
#include "anisoflow/core/worker_pool.hpp"
#include "anisoflow/geometry/detector_geometry.hpp"
#include "anisoflow/reduce/cake.hpp"
#include "anisoflow/reduce/corrections.hpp"

namespace anisoflow::reduce {

enum class PixelSplitting { kNone, kBoundingBox };

std::string_view to_string(PixelSplitting splitting);
/// "none" or "bbox"; the error lists the accepted names.
Result<PixelSplitting> parse_pixel_splitting(std::string_view name);

struct IntegratorOptions {
    CakeAxes axes;
    PixelSplitting splitting = PixelSplitting::kNone;
    unsigned thread_count = 1;  ///< threads that share one frame
};

/// Per-cell sums over one or more frames; CakeIntegrator adds frames, finish() divides.
/// Keeping sums (not means) makes the mean of many frames exact, whatever their exposures.
class CakeAccumulator {
  public:
    CakeAccumulator() = default;
    explicit CakeAccumulator(const CakeAxes& axes);

    [[nodiscard]] std::size_t frame_count() const { return frame_count_; }
    [[nodiscard]] const CakeAxes& axes() const { return axes_; }
    /// Mean cake of the frames added so far; cells no pixel reached are flagged empty.
    [[nodiscard]] Cake finish() const;
    /// Adds another accumulator's frames (same axes) to this one.
    [[nodiscard]] Result<void> merge(const CakeAccumulator& other);

    /// The per-cell sums, row-major [chi][Q] (cell_count() values each, empty before the first
    /// frame): what a reduce worker sends so that analyze merges frames exactly (services/).
    [[nodiscard]] std::span<const double> signal_sums() const { return signal_; }
    [[nodiscard]] std::span<const double> variance_sums() const { return variance_; }
    [[nodiscard]] std::span<const double> norm_sums() const { return norm_; }
    [[nodiscard]] std::span<const double> count_sums() const { return count_; }
    /// The accumulator holding sums made elsewhere (the inverse of the four accessors); each
    /// vector has axes.cell_count() values. Errors name the sum of the wrong length.
    [[nodiscard]] static Result<CakeAccumulator> from_sums(
        const CakeAxes& axes, std::vector<double> signal, std::vector<double> variance,
        std::vector<double> norm, std::vector<double> count, std::size_t frame_count);

  private:
    friend class CakeIntegrator;
    CakeAxes axes_;
    std::vector<double> signal_;    ///< sum_f sum_p c (raw - dark) / t_f
    std::vector<double> variance_;  ///< sum_f sum_p c^2 (raw + var(dark)) / t_f^2
    std::vector<double> norm_;      ///< sum_f sum_p c flat solid_angle polarization
    std::vector<double> count_;     ///< sum_f sum_p c
    std::size_t frame_count_ = 0;
};

/// Per-frame pixel acceptance (SPEC 2): values in [accept_low, reject_high) need no per-pixel
/// look-up; others are checked against saturation, the pixel's dark and finiteness.
struct PixelThresholds {
    double accept_low = -std::numeric_limits<double>::infinity();
    double reject_high = std::numeric_limits<double>::infinity();
};

/// How a pixel's share of one cell is stored (the bounding-box lookup; see CakeIntegrator).
struct LookupContribution {
    std::uint32_t cell;
    float weight;
};

/// Compact bounding-box record (12 bytes): first cell and spans packed in 32 bits, and four
/// 16-bit fixed-point weights. A pixel in one chi bin and at most kDirectQBins Q bins (97 % of
/// them) stores its Q weights directly, zero past its span, so the hot loop updates four cells
/// without a branch; others store the first/last weight along Q and chi and the weights in
/// between follow from the sum being 1 (docs/reduction.md).
struct LookupBoxRecord {
    std::uint32_t first_cell_and_spans;
    std::uint16_t weights[4];  ///< direct: Q bins 0..3; else: q first, q last, chi first, chi last
};

/// The geometric factors a lookup folds into each pixel's normalisation (SPEC 2): they depend
/// on the geometry alone, unlike the mask, dark and flat.
struct GeometricFactors {
    bool solid_angle = true;
    std::optional<double> polarization_factor;

    friend bool operator==(const GeometricFactors&, const GeometricFactors&) = default;
};

/// The factors `corrections` asks for.
GeometricFactors geometric_factors(const DetectorCorrections& corrections);

/// The geometry half of an integrator: every pixel's cell (or bounding-box cells and weights)
/// and its solid-angle x polarization factor, for one geometry, cake layout and splitting, with
/// no mask, dark or flat applied. Building it is the costly part (trigonometry per pixel centre
/// and corner: about 0.5 s for 4 Mpixel on one core); applying the corrections is one cheap pass
/// (CakeIntegrator::create from a lookup). A service builds it when a run is announced, before
/// its darks arrive, and every run with the same geometry reuses it (docs/reduction.md).
/// Immutable once built, so integrators on any thread share it.
class CakeLookup {
  public:
    static Result<std::shared_ptr<const CakeLookup>> create(
        const geometry::DetectorGeometry& geometry, const CakeAxes& axes, PixelSplitting splitting,
        const GeometricFactors& factors, unsigned thread_count = 1);

    [[nodiscard]] const CakeAxes& axes() const { return axes_; }
    [[nodiscard]] PixelSplitting splitting() const { return splitting_; }
    [[nodiscard]] const GeometricFactors& factors() const { return factors_; }
    [[nodiscard]] FrameShape detector_shape() const { return shape_; }
    /// Bytes the lookup holds (the integrators built from it hold their own corrected copy).
    [[nodiscard]] std::size_t size_bytes() const;

  private:
    friend class CakeIntegrator;
    CakeLookup() = default;
    void build_no_splitting(const geometry::DetectorGeometry& geometry, WorkerPool& pool);
    void build_bounding_box(const geometry::DetectorGeometry& geometry, WorkerPool& pool);

    CakeAxes axes_;
    PixelSplitting splitting_ = PixelSplitting::kNone;
    GeometricFactors factors_;
    FrameShape shape_;
    std::uint32_t dump_cell_ = 0;  ///< index past the last cell: pixels outside the Q range
    /// Solid angle x polarization (or 1) per pixel; 0 for pixels that reach no cell.
    std::vector<float> geometric_norm_;
    std::vector<std::uint32_t> cell_of_pixel_;   ///< kNone, dump_cell_ outside the Q range
    std::vector<LookupBoxRecord> box_of_pixel_;  ///< kBoundingBox
    std::vector<std::uint32_t> wide_pixels_;     ///< pixels with explicit contributions
    std::vector<std::uint32_t> wide_offsets_;    ///< CSR offsets into wide_contributions_
    std::vector<LookupContribution> wide_contributions_;
};

/// Owns the lookup and static corrections for one geometry and cake layout, and the threads and
/// scratch that integrate one frame. Safe to call from several threads; frames are then
/// integrated one after another (each with all the integrator's threads).
class CakeIntegrator {
  public:
    CakeIntegrator(CakeIntegrator&&) noexcept;
    CakeIntegrator& operator=(CakeIntegrator&&) noexcept;
    CakeIntegrator(const CakeIntegrator&) = delete;
    CakeIntegrator& operator=(const CakeIntegrator&) = delete;
    ~CakeIntegrator();

    /// Builds the lookup and applies the corrections (CakeLookup::create, then the overload
    /// below): for one-off integrators, where no lookup is worth keeping.
    static Result<CakeIntegrator> create(const geometry::DetectorGeometry& geometry,
                                         const IntegratorOptions& options,
                                         DetectorCorrections corrections);
    /// Applies the corrections (mask, dark, flat) to a lookup built earlier; its geometric
    /// factors must be the ones the corrections ask for. One linear pass over the pixels.
    static Result<CakeIntegrator> create(const std::shared_ptr<const CakeLookup>& lookup,
                                         unsigned thread_count, DetectorCorrections corrections);

    /// Integrates one frame; the frame must have the detector's shape.
    [[nodiscard]] Result<Cake> integrate(const FrameView& frame) const;
    /// The same into an existing cake, reusing its storage (the streaming path).
    [[nodiscard]] Result<void> integrate_into(const FrameView& frame, Cake& cake) const;
    /// Adds one frame's sums into `sums` (for means over frames).
    [[nodiscard]] Result<void> accumulate(const FrameView& frame, CakeAccumulator& sums) const;

    [[nodiscard]] const CakeAxes& axes() const { return options_.axes; }
    [[nodiscard]] const IntegratorOptions& options() const { return options_; }
    [[nodiscard]] FrameShape detector_shape() const { return shape_; }
    /// Bytes of the per-pixel lookup the hot loop reads (memory target in docs/performance.md).
    [[nodiscard]] std::size_t lookup_size_bytes() const;
    /// Pixels that contribute to at least one cell (not masked, inside the Q range).
    [[nodiscard]] std::size_t contributing_pixel_count() const { return contributing_pixels_; }

    // One pixel's share of one cell, and the compact bounding-box record (see CakeLookup).
    using Contribution = LookupContribution;
    using BoxRecord = LookupBoxRecord;
    static constexpr std::uint32_t kDirectQBins = 4;

  private:
    struct Scratch;
    // Per-cell terms a frame divides by: static, or corrected for this frame's exclusions.
    struct CellTerms {
        const double* dark;
        const double* dark_variance;  ///< additive variance: see static_dark_variance_
        const double* norm;
        const double* count;
        const double* dark_weight_sq;  ///< kIntegrating only: sum c^2 dark
    };

    CakeIntegrator();

    [[nodiscard]] Result<void> check_frame(const FrameView& frame) const;
    [[nodiscard]] std::size_t accumulator_cells() const;
    // Sums the frame's pixels into the scratch (caller holds the scratch mutex).
    CellTerms sum_frame(const FrameView& frame) const;
    template <class Pixel>
    void sum_pixels(std::span<const Pixel> raw) const;
    template <class Visit>
    void for_each_contribution(std::size_t pixel, Visit&& visit) const;

    // The lookup's cells and norms with this integrator's excluded pixels taken out.
    void apply_corrections(const CakeLookup& lookup);
    void build_static_sums();

    IntegratorOptions options_;
    FrameShape shape_;
    DetectorCorrections corrections_;
    std::uint32_t dump_cell_ = 0;  ///< index past the last cell: masked and out-of-range pixels

    std::vector<std::uint32_t> cell_of_pixel_;  ///< kNone lookup, dump_cell_ when excluded
    std::vector<BoxRecord> box_of_pixel_;       ///< kBoundingBox lookup
    std::vector<std::uint32_t> wide_pixels_;    ///< pixels with explicit contributions, sorted
    std::vector<std::uint32_t> wide_offsets_;   ///< CSR offsets into wide_contributions_
    std::vector<Contribution> wide_contributions_;

    std::vector<float> pixel_norm_;  ///< flat * solid angle * polarization per pixel
    // Frame-independent sums per cell: what a frame with no dynamically masked pixel divides by.
    std::vector<double> static_norm_;
    std::vector<double> static_count_;
    std::vector<double> static_dark_;  ///< sum c dark
    /// kPoisson: sum c^2 dark / n_dark; kIntegrating: sum c^2 sigma_read^2 (1 + 1/n_dark).
    std::vector<double> static_dark_variance_;
    std::vector<double> static_dark_weight_sq_;  ///< kIntegrating: sum c^2 dark
    /// kIntegrating: the raw-minus-dark variance of one pixel that does not depend on its
    /// counts, sigma_read^2 (1 + 1/n_dark) (1 + 0 for an exact dark, n_dark = 0).
    double read_variance_counts2_ = 0.0;
    double dark_variance_scale_ = 0.0;  ///< kPoisson: 1 / n_dark (0 for an exact dark)
    // A pixel's share `weight` of its dark term's variance (both models), summed into
    // static_dark_variance_; the Poisson expression keeps SPEC 2's rounding bit for bit.
    [[nodiscard]] double dark_variance_share(double weight, double dark) const;
    // The cell's raw-minus-dark variance from its sums (SPEC 2 or its integrating extension).
    [[nodiscard]] double cell_variance(double raw_variance_sum, const CellTerms& terms,
                                       std::size_t cell) const;
    std::size_t contributing_pixels_ = 0;
    PixelThresholds thresholds_;

    std::unique_ptr<WorkerPool> pool_;
    std::unique_ptr<Scratch> scratch_;
    mutable std::vector<double> norm_1d_scratch_;  // guarded by the scratch mutex
};

}  // namespace anisoflow::reduce
