#include "anisoflow/reduce/cake_integrator.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <numbers>
#include <type_traits>
#include <utility>
#include <variant>

namespace anisoflow::reduce {

namespace {

// The per-pixel bodies of the hot loops are lambdas; GCC does not always inline them into the
// traversal and then pays a call per pixel, which costs more than the work.
#define ANISOFLOW_ALWAYS_INLINE __attribute__((always_inline))

// Compact bounding-box record: 24 bits of first cell, 4 bits each of Q and chi span.
constexpr unsigned kCellBits = 24;
constexpr std::uint32_t kCellMask = (1U << kCellBits) - 1U;
constexpr std::uint32_t kMaxCompactSpan = 15;
// 16-bit fixed point for the fractional edge weights: 1.5e-5 resolution, far below the 0.5 %
// agreement SPEC 2 asks for, and the same quantised weight divides numerator and denominator.
constexpr double kWeightScale = 65535.0;
// Decoding multiplies by the reciprocal: a division per weight is the slowest instruction of the
// bounding-box loop. Every decoder uses this same constant, so weights stay consistent.
constexpr double kInvWeightScale = 1.0 / kWeightScale;
constexpr double kRadToDeg = 180.0 / std::numbers::pi;
// A cell whose remaining share is rounding residue after per-frame exclusions counts as empty.
constexpr double kMinCellCount = 1e-9;

std::uint32_t pack_cell_and_spans(std::uint32_t cell, std::uint32_t q_span,
                                  std::uint32_t chi_span) {
    return cell | (q_span << kCellBits) | (chi_span << (kCellBits + 4));
}

// How a pixel's extent [lo, hi) in fractional bin units splits over whole bins along one axis
// (pyFAI splitBBox): the first and last bins get the covered fraction, the ones between a full
// share, all divided by the extent so the shares sum to 1.
struct AxisSplit {
    std::uint32_t first_bin = 0;
    std::uint32_t span = 0;  ///< 0 when the extent misses the axis
    double first_weight = 1.0;
    double last_weight = 1.0;
    double middle_weight = 0.0;
};

AxisSplit split_axis(double lo, double hi, std::uint32_t bin_count) {
    const double n = static_cast<double>(bin_count);
    if (!(hi > 0.0) || !(lo < n)) {
        return {};
    }
    lo = std::max(lo, 0.0);
    hi = std::min(hi, n);
    AxisSplit split;
    const auto first = static_cast<std::uint32_t>(lo);
    const auto last = std::min(static_cast<std::uint32_t>(hi), bin_count - 1U);
    split.first_bin = first;
    split.span = last - first + 1U;
    const double extent = hi - lo;
    if (split.span == 1 || !(extent > 0.0)) {
        split.span = 1;
        return split;
    }
    split.first_weight = (static_cast<double>(first) + 1.0 - lo) / extent;
    split.last_weight = (hi - static_cast<double>(last)) / extent;
    split.middle_weight = 1.0 / extent;
    return split;
}

std::uint16_t quantise_weight(double weight) {
    return static_cast<std::uint16_t>(std::lround(std::clamp(weight, 0.0, 1.0) * kWeightScale));
}

// The direct bounding-box update: pair k += (w_k v, w_k^2 v) for the four 16-bit weights w_k of
// a record, each cell's pair read and written as one unit (see sum_box_rows).
ANISOFLOW_ALWAYS_INLINE inline void add_direct_q_weights(const std::uint16_t* weights, double value,
                                                         double* cell) {
    for (std::uint32_t k = 0; k < CakeIntegrator::kDirectQBins; ++k) {
        const double w = weights[k] * kInvWeightScale;
        const double wv = w * value;
        cell[2 * std::size_t{k}] += wv;
        cell[2 * std::size_t{k} + 1] += w * wv;
    }
}

// Weight of the k-th bin of a split along one axis.
double axis_weight(const AxisSplit& split, std::uint32_t k) {
    if (split.span == 1) {
        return 1.0;
    }
    if (k == 0) {
        return split.first_weight;
    }
    return k + 1 == split.span ? split.last_weight : split.middle_weight;
}

// Expands a record's edge weights along one axis into `weights[0..span)`.
inline void expand_weights(std::uint32_t span, std::uint16_t first, std::uint16_t last,
                           double* weights) {
    if (span == 1) {
        weights[0] = 1.0;
        return;
    }
    const double w_first = first * kInvWeightScale;
    const double w_last = last * kInvWeightScale;
    weights[0] = w_first;
    weights[span - 1] = w_last;
    const double middle = (1.0 - w_first - w_last) / static_cast<double>(span - 2 + (span == 2));
    for (std::uint32_t k = 1; k + 1 < span; ++k) {
        weights[k] = middle;
    }
}

// Runs body(begin, end, chunk) over [0, count) split into the pool's contiguous chunks.
template <class Body>
void parallel_rows(WorkerPool& pool, std::size_t count, Body&& body) {
    const std::size_t step = (count + pool.size() - 1U) / pool.size();
    pool.run([&](unsigned chunk) {
        const std::size_t begin = std::min(count, chunk * step);
        body(begin, std::min(count, begin + step), chunk);
    });
}

// Runs visit(pixel) over [begin, end); the per-pixel bodies are lambdas forced inline.
template <class Visit>
inline void for_each_pixel(std::size_t begin, std::size_t end, Visit&& visit) {
    for (std::size_t pixel = begin; pixel < end; ++pixel) {
        visit(pixel);
    }
}

// Per-frame pixel acceptance (SPEC 2): saturated, negative-after-dark and non-finite pixels are
// excluded from that frame only. `accept_low`/`reject_high` bracket the values that need no
// per-pixel look-up, so the hot loop tests two constants and branches rarely.
template <class Pixel>
struct TypedThresholds {
    Pixel low;
    Pixel high;  ///< values >= high take the slow path
    bool has_high;
};

template <class Pixel>
TypedThresholds<Pixel> typed_thresholds(const PixelThresholds& thresholds) {
    if constexpr (std::is_integral_v<Pixel>) {
        using Limits = std::numeric_limits<Pixel>;
        const double low = std::ceil(thresholds.accept_low);
        const double high = std::ceil(thresholds.reject_high);
        TypedThresholds<Pixel> typed{};
        typed.low = low <= static_cast<double>(Limits::min())
                        ? Limits::min()
                        : (low > static_cast<double>(Limits::max()) ? Limits::max()
                                                                    : static_cast<Pixel>(low));
        typed.has_high = high <= static_cast<double>(Limits::max());
        typed.high = typed.has_high
                         ? static_cast<Pixel>(std::max(high, static_cast<double>(Limits::min())))
                         : Limits::max();
        return typed;
    } else {
        return TypedThresholds<Pixel>{static_cast<Pixel>(thresholds.accept_low),
                                      static_cast<Pixel>(thresholds.reject_high), true};
    }
}

template <class Pixel>
inline bool in_fast_range(Pixel value, const TypedThresholds<Pixel>& t) {
    if constexpr (std::is_integral_v<Pixel>) {
        return value >= t.low && (!t.has_high || value < t.high);
    } else {
        return value >= t.low && value < t.high;  // false for NaN
    }
}

// One thread's share of the bounding-box loop, summing (c v, c^2 v) pairs per cell into `acc`. Each
// cell's pair is loaded and stored as one unit: a wider access spanning two cells would partly
// overlap the previous pixel's store, and the CPU cannot forward such a store to the load (a stall
// per pixel, measured: docs/reduction.md).
struct BoxRows {
    const CakeIntegrator::BoxRecord* boxes;
    std::uint32_t dump_cell;
    std::uint32_t n_q;
    std::size_t pixel_begin;
    std::size_t pixel_end;
};

ANISOFLOW_ALWAYS_INLINE inline void add_pair(double* pair, double a, double a2) {
    pair[0] += a;
    pair[1] += a2;
}

template <class Pixel, class Reject>
__attribute__((noinline)) void sum_box_rows(const BoxRows& rows, const Pixel* values, double* acc,
                                            const TypedThresholds<Pixel>& fast,
                                            const Reject& rejected_now,
                                            std::vector<std::uint32_t>& rejected) {
    const CakeIntegrator::BoxRecord* boxes = rows.boxes;
    const std::uint32_t dump_cell = rows.dump_cell;
    const std::size_t row_stride = 2 * static_cast<std::size_t>(rows.n_q);
    for_each_pixel(rows.pixel_begin, rows.pixel_end, [&](std::size_t i) ANISOFLOW_ALWAYS_INLINE {
        const Pixel v = values[i];
        const CakeIntegrator::BoxRecord& record = boxes[i];
        const std::uint32_t first_cell = record.first_cell_and_spans & kCellMask;
        if (first_cell == dump_cell) {
            return;  // excluded or out of range (long runs: predictable), or wide (later)
        }
        if (!in_fast_range(v, fast) && rejected_now(v, i)) [[unlikely]] {
            rejected.push_back(static_cast<std::uint32_t>(i));
            return;
        }
        const auto value = static_cast<double>(v);
        const std::uint32_t spans = record.first_cell_and_spans >> kCellBits;
        const std::uint32_t q_span = spans & 0xFU;
        const std::uint32_t chi_span = spans >> 4;
        double* cell = acc + 2 * static_cast<std::size_t>(first_cell);
        if (chi_span == 1 && q_span <= CakeIntegrator::kDirectQBins) [[likely]] {
            // Four unconditional updates; weights past the span are zero and land in the
            // next cells (or the padding after the dump cell), adding nothing.
            add_direct_q_weights(record.weights, value, cell);
            return;
        }
        // Separable weights: along Q the first and last bins get their covered fraction,
        // bins between share the rest equally; the same along chi.
        const double q_first = static_cast<double>(record.weights[0] * kInvWeightScale);
        const double q_last = static_cast<double>(record.weights[1] * kInvWeightScale);
        const double q_middle =
            q_span > 2 ? (1.0 - q_first - q_last) / static_cast<double>(q_span - 2) : 0.0;
        const auto add_q_row = [&](double* row, double chi_weight) ANISOFLOW_ALWAYS_INLINE {
            const double a = chi_weight * value;                // sum c v
            const double a2 = chi_weight * chi_weight * value;  // sum c^2 v
            if (q_span == 1) {
                add_pair(row, a, a2);
                return;
            }
            add_pair(row, q_first * a, q_first * q_first * a2);
            const double m = q_middle * a;
            const double m2 = q_middle * q_middle * a2;
            for (std::uint32_t b = 1; b + 1 < q_span; ++b) {
                add_pair(row + 2 * std::size_t{b}, m, m2);
            }
            add_pair(row + 2 * std::size_t{q_span - 1}, q_last * a, q_last * q_last * a2);
        };
        if (chi_span == 1) {
            add_q_row(cell, 1.0);
            return;
        }
        const double chi_first = static_cast<double>(record.weights[2] * kInvWeightScale);
        const double chi_last = static_cast<double>(record.weights[3] * kInvWeightScale);
        const double chi_middle =
            chi_span > 2 ? (1.0 - chi_first - chi_last) / static_cast<double>(chi_span - 2) : 0.0;
        add_q_row(cell, chi_first);
        for (std::uint32_t k = 1; k + 1 < chi_span; ++k) {
            add_q_row(cell + k * row_stride, chi_middle);
        }
        add_q_row(cell + (chi_span - 1) * row_stride, chi_last);
    });
}

}  // namespace

std::string_view to_string(PixelSplitting splitting) {
    switch (splitting) {
        case PixelSplitting::kNone:
            return "none";
        case PixelSplitting::kBoundingBox:
            return "bbox";
    }
    return "unknown";
}

Result<PixelSplitting> parse_pixel_splitting(std::string_view name) {
    if (name == "none") {
        return PixelSplitting::kNone;
    }
    if (name == "bbox") {
        return PixelSplitting::kBoundingBox;
    }
    return fail(ErrorCode::kInvalidArgument, "pixel splitting '{}' is not one of: none, bbox",
                name);
}

CakeAccumulator::CakeAccumulator(const CakeAxes& axes)
    : axes_(axes),
      signal_(axes.cell_count(), 0.0),
      variance_(axes.cell_count(), 0.0),
      norm_(axes.cell_count(), 0.0),
      count_(axes.cell_count(), 0.0) {}

Result<void> CakeAccumulator::merge(const CakeAccumulator& other) {
    if (other.frame_count_ == 0) {
        return {};
    }
    if (frame_count_ == 0 && signal_.empty()) {
        *this = other;
        return {};
    }
    if (other.signal_.size() != signal_.size() || other.axes_.n_q != axes_.n_q ||
        other.axes_.q_min_inv_angstrom != axes_.q_min_inv_angstrom ||
        other.axes_.q_max_inv_angstrom != axes_.q_max_inv_angstrom) {
        return fail(ErrorCode::kInvalidArgument, "cannot merge cakes of different layouts");
    }
    for (std::size_t c = 0; c < signal_.size(); ++c) {
        signal_[c] += other.signal_[c];
        variance_[c] += other.variance_[c];
        norm_[c] += other.norm_[c];
        count_[c] += other.count_[c];
    }
    frame_count_ += other.frame_count_;
    return {};
}

Result<CakeAccumulator> CakeAccumulator::from_sums(const CakeAxes& axes, std::vector<double> signal,
                                                   std::vector<double> variance,
                                                   std::vector<double> norm,
                                                   std::vector<double> count,
                                                   std::size_t frame_count) {
    const std::pair<const char*, const std::vector<double>*> sums[] = {
        {"signal", &signal}, {"variance", &variance}, {"norm", &norm}, {"count", &count}};
    for (const auto& [name, values] : sums) {
        if (values->size() != axes.cell_count()) {
            return fail(ErrorCode::kInvalidArgument,
                        "the {} sums hold {} values, the {} x {} cake needs {}", name,
                        values->size(), axes.n_chi, axes.n_q, axes.cell_count());
        }
    }
    CakeAccumulator sums_out;
    sums_out.axes_ = axes;
    sums_out.signal_ = std::move(signal);
    sums_out.variance_ = std::move(variance);
    sums_out.norm_ = std::move(norm);
    sums_out.count_ = std::move(count);
    sums_out.frame_count_ = frame_count;
    return sums_out;
}

Cake CakeAccumulator::finish() const {
    Cake cake;
    cake.axes = axes_;
    cake.frame_count = frame_count_;
    const std::size_t n_q = axes_.n_q;
    const std::size_t n_chi = axes_.n_chi;
    cake.q_inv_angstrom.resize(n_q);
    cake.chi_deg.resize(n_chi);
    for (std::size_t iq = 0; iq < n_q; ++iq) {
        cake.q_inv_angstrom[iq] = axes_.q_centre(iq);
    }
    for (std::size_t ichi = 0; ichi < n_chi; ++ichi) {
        cake.chi_deg[ichi] = axes_.chi_centre_deg(ichi);
    }
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double frames = frame_count_ == 0 ? 1.0 : static_cast<double>(frame_count_);
    const double min_count = kMinCellCount * frames;
    cake.intensity.assign(axes_.cell_count(), nan);
    cake.variance.assign(axes_.cell_count(), nan);
    cake.count.assign(axes_.cell_count(), 0.0);
    std::vector<double> signal_1d(n_q, 0.0);
    std::vector<double> variance_1d(n_q, 0.0);
    std::vector<double> norm_1d(n_q, 0.0);
    std::vector<double> count_1d(n_q, 0.0);
    for (std::size_t ichi = 0; ichi < n_chi; ++ichi) {
        for (std::size_t iq = 0; iq < n_q; ++iq) {
            const std::size_t c = ichi * n_q + iq;
            if (count_[c] > min_count && norm_[c] > 0.0) {
                cake.intensity[c] = signal_[c] / norm_[c];
                cake.variance[c] = variance_[c] / (norm_[c] * norm_[c]);
                cake.count[c] = count_[c] / frames;
                signal_1d[iq] += signal_[c];
                variance_1d[iq] += variance_[c];
                norm_1d[iq] += norm_[c];
                count_1d[iq] += count_[c];
            }
        }
    }
    cake.intensity_1d.assign(n_q, nan);
    cake.variance_1d.assign(n_q, nan);
    cake.count_1d.assign(n_q, 0.0);
    for (std::size_t iq = 0; iq < n_q; ++iq) {
        if (norm_1d[iq] > 0.0) {
            cake.intensity_1d[iq] = signal_1d[iq] / norm_1d[iq];
            cake.variance_1d[iq] = variance_1d[iq] / (norm_1d[iq] * norm_1d[iq]);
            cake.count_1d[iq] = count_1d[iq] / frames;
        }
    }
    return cake;
}

GeometricFactors geometric_factors(const DetectorCorrections& corrections) {
    return {corrections.correct_solid_angle, corrections.polarization_factor};
}

Result<std::shared_ptr<const CakeLookup>> CakeLookup::create(
    const geometry::DetectorGeometry& geometry, const CakeAxes& axes, PixelSplitting splitting,
    const GeometricFactors& factors, unsigned thread_count) {
    if (axes.n_q == 0 || axes.n_chi == 0) {
        return fail(ErrorCode::kInvalidArgument, "the cake needs at least one Q and one chi bin");
    }
    if (!(axes.q_min_inv_angstrom >= 0.0) || !(axes.q_max_inv_angstrom > axes.q_min_inv_angstrom)) {
        return fail(ErrorCode::kInvalidArgument, "Q range [{}, {}] 1/A is empty or negative",
                    axes.q_min_inv_angstrom, axes.q_max_inv_angstrom);
    }
    if (axes.cell_count() >= kCellMask) {
        return fail(ErrorCode::kInvalidArgument, "a cake of {} x {} cells exceeds the {} supported",
                    axes.n_q, axes.n_chi, kCellMask - 1U);
    }
    const FrameShape shape = geometry.shape();
    if (shape.pixel_count() == 0 ||
        shape.pixel_count() > std::numeric_limits<std::uint32_t>::max()) {
        return fail(ErrorCode::kInvalidArgument, "detector shape {}x{} is not supported",
                    shape.rows, shape.cols);
    }
    if (factors.polarization_factor && !std::isfinite(*factors.polarization_factor)) {
        return fail(ErrorCode::kInvalidArgument, "polarization factor {} is not finite",
                    *factors.polarization_factor);
    }
    // Not make_shared: the constructor is private.
    std::shared_ptr<CakeLookup> lookup(new CakeLookup());
    lookup->axes_ = axes;
    lookup->splitting_ = splitting;
    lookup->factors_ = factors;
    lookup->shape_ = shape;
    lookup->dump_cell_ = static_cast<std::uint32_t>(axes.cell_count());
    WorkerPool pool(std::max(1U, thread_count));
    if (splitting == PixelSplitting::kNone) {
        lookup->build_no_splitting(geometry, pool);
    } else {
        lookup->build_bounding_box(geometry, pool);
    }
    return std::shared_ptr<const CakeLookup>(std::move(lookup));
}

std::size_t CakeLookup::size_bytes() const {
    return geometric_norm_.size() * sizeof(float) + cell_of_pixel_.size() * sizeof(std::uint32_t) +
           box_of_pixel_.size() * sizeof(LookupBoxRecord) +
           wide_pixels_.size() * sizeof(std::uint32_t) +
           wide_offsets_.size() * sizeof(std::uint32_t) +
           wide_contributions_.size() * sizeof(LookupContribution);
}

Result<CakeIntegrator> CakeIntegrator::create(const geometry::DetectorGeometry& geometry,
                                              const IntegratorOptions& options,
                                              DetectorCorrections corrections) {
    // The corrections first: a bad mask or dark should not cost a lookup build.
    if (auto valid = corrections.validate(geometry.shape()); !valid) {
        return tl::unexpected(valid.error());
    }
    auto lookup = CakeLookup::create(geometry, options.axes, options.splitting,
                                     geometric_factors(corrections), options.thread_count);
    if (!lookup) {
        return tl::unexpected(lookup.error());
    }
    return create(*lookup, options.thread_count, std::move(corrections));
}

Result<CakeIntegrator> CakeIntegrator::create(const std::shared_ptr<const CakeLookup>& lookup,
                                              unsigned thread_count,
                                              DetectorCorrections corrections) {
    if (!lookup) {
        return fail(ErrorCode::kInvalidArgument, "no lookup to build the integrator from");
    }
    const FrameShape shape = lookup->detector_shape();
    if (auto valid = corrections.validate(shape); !valid) {
        return tl::unexpected(valid.error());
    }
    if (geometric_factors(corrections) != lookup->factors()) {
        const auto describe = [](const GeometricFactors& f) {
            return fmt::format("solid angle {}, polarization {}", f.solid_angle ? "on" : "off",
                               f.polarization_factor ? fmt::format("{}", *f.polarization_factor)
                                                     : std::string("off"));
        };
        return fail(ErrorCode::kInvalidArgument,
                    "the lookup was built for {} but the corrections ask for {}",
                    describe(lookup->factors()), describe(geometric_factors(corrections)));
    }

    CakeIntegrator integrator;
    integrator.options_ = {lookup->axes(), lookup->splitting(), std::max(1U, thread_count)};
    integrator.shape_ = shape;
    integrator.corrections_ = std::move(corrections);
    integrator.dump_cell_ = lookup->dump_cell_;
    integrator.pool_ = std::make_unique<WorkerPool>(integrator.options_.thread_count);
    integrator.scratch_ = std::make_unique<Scratch>();
    if (integrator.corrections_.mask_negative_after_dark) {
        // Without a dark, negative raw values are the ones to exclude.
        double dark_max = 0.0;
        if (!integrator.corrections_.dark_counts.empty()) {
            dark_max = *std::max_element(integrator.corrections_.dark_counts.begin(),
                                         integrator.corrections_.dark_counts.end());
        }
        integrator.thresholds_.accept_low = dark_max;
    }
    if (integrator.corrections_.saturation_counts) {
        integrator.thresholds_.reject_high = *integrator.corrections_.saturation_counts;
    }
    integrator.apply_corrections(*lookup);
    integrator.build_static_sums();
    return integrator;
}

namespace {

// A pixel's flat (1 without one), or 0 where the pixel is excluded: masked, a flat that is not
// positive and finite, or a dark that is not finite (SPEC 2).
double corrected_flat(const DetectorCorrections& corrections, std::size_t pixel) {
    if (!corrections.mask.empty() && corrections.mask[pixel] != 0) {
        return 0.0;
    }
    if (!corrections.dark_counts.empty() && !std::isfinite(corrections.dark_counts[pixel])) {
        return 0.0;
    }
    if (corrections.flat.empty()) {
        return 1.0;
    }
    const double flat = corrections.flat[pixel];
    return flat > 0.0 && std::isfinite(flat) ? flat : 0.0;
}

// Solid angle x polarization of one pixel centre, as the lookup stores it.
double geometric_norm(const geometry::DetectorGeometry& geometry, const GeometricFactors& factors,
                      std::size_t row, std::size_t col, const geometry::ScatteringAngles& angles) {
    double norm = 1.0;
    if (factors.solid_angle) {
        norm *= geometry.solid_angle(row, col);
    }
    if (factors.polarization_factor) {
        norm *= geometry::DetectorGeometry::polarization(angles, *factors.polarization_factor);
    }
    return norm;
}

}  // namespace

void CakeLookup::build_no_splitting(const geometry::DetectorGeometry& geometry, WorkerPool& pool) {
    const std::size_t pixels = shape_.pixel_count();
    cell_of_pixel_.assign(pixels, dump_cell_);
    geometric_norm_.assign(pixels, 0.0F);
    const double q_scale =
        static_cast<double>(axes_.n_q) / (axes_.q_max_inv_angstrom - axes_.q_min_inv_angstrom);
    const double chi_scale = static_cast<double>(axes_.n_chi) / 360.0;
    parallel_rows(
        pool, shape_.rows, [&](std::size_t row_begin, std::size_t row_end, unsigned /*chunk*/) {
            for (std::size_t row = row_begin; row < row_end; ++row) {
                for (std::size_t col = 0; col < shape_.cols; ++col) {
                    const std::size_t pixel = row * shape_.cols + col;
                    const auto angles = geometry.pixel_centre(row, col);
                    const double norm = geometric_norm(geometry, factors_, row, col, angles);
                    if (!(norm > 0.0)) {
                        continue;
                    }
                    const double q = geometry.q_inv_angstrom(angles.two_theta_rad);
                    const double fq = (q - axes_.q_min_inv_angstrom) * q_scale;
                    if (!(fq >= 0.0) || !(fq < static_cast<double>(axes_.n_q))) {
                        continue;
                    }
                    // chi is in (-180, 180]: +180 joins the last bin, as in pyFAI's inclusive
                    // range.
                    const auto ichi = std::min(
                        static_cast<std::size_t>((angles.chi_rad * kRadToDeg + 180.0) * chi_scale),
                        axes_.n_chi - 1U);
                    cell_of_pixel_[pixel] =
                        static_cast<std::uint32_t>(ichi * axes_.n_q + static_cast<std::size_t>(fq));
                    geometric_norm_[pixel] = static_cast<float>(norm);
                }
            }
        });
}

void CakeLookup::build_bounding_box(const geometry::DetectorGeometry& geometry, WorkerPool& pool) {
    const CakeAxes& axes = axes_;
    const std::size_t rows = shape_.rows;
    const std::size_t cols = shape_.cols;
    const std::size_t pixels = shape_.pixel_count();
    const LookupBoxRecord excluded{pack_cell_and_spans(dump_cell_, 1, 1), {0, 0, 0, 0}};
    box_of_pixel_.assign(pixels, excluded);
    geometric_norm_.assign(pixels, 0.0F);
    const double q_scale =
        static_cast<double>(axes.n_q) / (axes.q_max_inv_angstrom - axes.q_min_inv_angstrom);
    const double chi_scale = static_cast<double>(axes.n_chi) / 360.0;
    constexpr std::uint32_t kDirectQBins = CakeIntegrator::kDirectQBins;

    // Explicit contributions of pixels whose box is too wide for a compact record, per chunk.
    struct WideList {
        std::vector<std::uint32_t> pixels;
        std::vector<std::uint32_t> counts;
        std::vector<LookupContribution> contributions;
    };
    std::vector<WideList> wide(pool.size());

    parallel_rows(pool, rows, [&](std::size_t row_begin, std::size_t row_end, unsigned chunk) {
        // Corner angles of one row of pixel corners (cols + 1 of them), two rows at a time.
        std::vector<double> q_top(cols + 1);
        std::vector<double> chi_top(cols + 1);
        std::vector<double> q_bottom(cols + 1);
        std::vector<double> chi_bottom(cols + 1);
        const auto corner_row = [&](std::size_t corner, std::vector<double>& q_out,
                                    std::vector<double>& chi_out) {
            for (std::size_t j = 0; j <= cols; ++j) {
                const auto a =
                    geometry.angles_at(static_cast<double>(corner), static_cast<double>(j));
                q_out[j] = geometry.q_inv_angstrom(a.two_theta_rad);
                chi_out[j] = a.chi_rad;
            }
        };
        corner_row(row_begin, q_top, chi_top);
        for (std::size_t row = row_begin; row < row_end; ++row) {
            corner_row(row + 1, q_bottom, chi_bottom);
            for (std::size_t col = 0; col < cols; ++col) {
                const std::size_t pixel = row * cols + col;
                const auto angles = geometry.pixel_centre(row, col);
                const double norm = geometric_norm(geometry, factors_, row, col, angles);
                if (!(norm > 0.0)) {
                    continue;
                }
                // pyFAI's bounding box: centre +- the largest distance to a corner, with chi
                // distances taken the short way round the circle.
                const double q = geometry.q_inv_angstrom(angles.two_theta_rad);
                double dq = 0.0;
                double dchi = 0.0;
                const double corner_q[4] = {q_top[col], q_top[col + 1], q_bottom[col],
                                            q_bottom[col + 1]};
                const double corner_chi[4] = {chi_top[col], chi_top[col + 1], chi_bottom[col],
                                              chi_bottom[col + 1]};
                for (int k = 0; k < 4; ++k) {
                    dq = std::max(dq, std::abs(corner_q[k] - q));
                    const double d = std::abs(corner_chi[k] - angles.chi_rad);
                    dchi = std::max(dchi, std::min(d, 2.0 * std::numbers::pi - d));
                }
                const double chi_deg = angles.chi_rad * kRadToDeg;
                const double dchi_deg = dchi * kRadToDeg;
                const AxisSplit qs = split_axis((q - dq - axes.q_min_inv_angstrom) * q_scale,
                                                (q + dq - axes.q_min_inv_angstrom) * q_scale,
                                                static_cast<std::uint32_t>(axes.n_q));
                const AxisSplit cs = split_axis((chi_deg - dchi_deg + 180.0) * chi_scale,
                                                (chi_deg + dchi_deg + 180.0) * chi_scale,
                                                static_cast<std::uint32_t>(axes.n_chi));
                if (qs.span == 0 || cs.span == 0) {
                    continue;
                }
                geometric_norm_[pixel] = static_cast<float>(norm);
                const std::uint32_t first_cell =
                    cs.first_bin * static_cast<std::uint32_t>(axes.n_q) + qs.first_bin;
                if (cs.span == 1 && qs.span <= kDirectQBins) {
                    LookupBoxRecord record{pack_cell_and_spans(first_cell, qs.span, 1),
                                           {0, 0, 0, 0}};
                    for (std::uint32_t k = 0; k < qs.span; ++k) {
                        record.weights[k] = quantise_weight(axis_weight(qs, k));
                    }
                    box_of_pixel_[pixel] = record;
                    continue;
                }
                if (qs.span <= kMaxCompactSpan && cs.span <= kMaxCompactSpan) {
                    box_of_pixel_[pixel] = LookupBoxRecord{
                        pack_cell_and_spans(first_cell, qs.span, cs.span),
                        {quantise_weight(qs.first_weight), quantise_weight(qs.last_weight),
                         quantise_weight(cs.first_weight), quantise_weight(cs.last_weight)}};
                    continue;
                }
                // Too wide for a compact record (pixels near the beam centre span many chi
                // bins): keep exact float weights in a side list.
                WideList& list = wide[chunk];
                list.pixels.push_back(static_cast<std::uint32_t>(pixel));
                list.counts.push_back(qs.span * cs.span);
                for (std::uint32_t a = 0; a < cs.span; ++a) {
                    for (std::uint32_t b = 0; b < qs.span; ++b) {
                        list.contributions.push_back(LookupContribution{
                            first_cell + a * static_cast<std::uint32_t>(axes.n_q) + b,
                            static_cast<float>(axis_weight(cs, a) * axis_weight(qs, b))});
                    }
                }
            }
            std::swap(q_top, q_bottom);
            std::swap(chi_top, chi_bottom);
        }
    });
    // Chunks cover increasing rows, so concatenating keeps wide_pixels_ sorted.
    wide_offsets_.assign(1, 0);
    for (const WideList& list : wide) {
        std::size_t offset = 0;
        for (std::size_t k = 0; k < list.pixels.size(); ++k) {
            wide_pixels_.push_back(list.pixels[k]);
            wide_contributions_.insert(
                wide_contributions_.end(),
                list.contributions.begin() + static_cast<std::ptrdiff_t>(offset),
                list.contributions.begin() + static_cast<std::ptrdiff_t>(offset + list.counts[k]));
            offset += list.counts[k];
            wide_offsets_.push_back(static_cast<std::uint32_t>(wide_contributions_.size()));
        }
    }
}

void CakeIntegrator::apply_corrections(const CakeLookup& lookup) {
    const std::size_t pixels = shape_.pixel_count();
    const bool split = options_.splitting == PixelSplitting::kBoundingBox;
    pixel_norm_.assign(pixels, 0.0F);
    if (split) {
        box_of_pixel_ = lookup.box_of_pixel_;
    } else {
        cell_of_pixel_ = lookup.cell_of_pixel_;
    }
    const BoxRecord excluded{pack_cell_and_spans(dump_cell_, 1, 1), {0, 0, 0, 0}};
    parallel_rows(*pool_, shape_.rows,
                  [&](std::size_t row_begin, std::size_t row_end, unsigned /*chunk*/) {
                      for (std::size_t pixel = row_begin * shape_.cols;
                           pixel < row_end * shape_.cols; ++pixel) {
                          const double norm = static_cast<double>(lookup.geometric_norm_[pixel]) *
                                              corrected_flat(corrections_, pixel);
                          if (norm > 0.0) {
                              pixel_norm_[pixel] = static_cast<float>(norm);
                          } else if (split) {
                              box_of_pixel_[pixel] = excluded;
                          } else {
                              cell_of_pixel_[pixel] = dump_cell_;
                          }
                      }
                  });
    // The wide pixels that survive the corrections, in the lookup's (increasing) order.
    wide_pixels_.clear();
    wide_contributions_.clear();
    wide_offsets_.assign(1, 0);
    for (std::size_t k = 0; k < lookup.wide_pixels_.size(); ++k) {
        const std::uint32_t pixel = lookup.wide_pixels_[k];
        if (pixel_norm_[pixel] <= 0.0F) {
            continue;
        }
        wide_pixels_.push_back(pixel);
        wide_contributions_.insert(wide_contributions_.end(),
                                   lookup.wide_contributions_.begin() +
                                       static_cast<std::ptrdiff_t>(lookup.wide_offsets_[k]),
                                   lookup.wide_contributions_.begin() +
                                       static_cast<std::ptrdiff_t>(lookup.wide_offsets_[k + 1]));
        wide_offsets_.push_back(static_cast<std::uint32_t>(wide_contributions_.size()));
    }
}

template <class Visit>
void CakeIntegrator::for_each_contribution(std::size_t pixel, Visit&& visit) const {
    if (options_.splitting == PixelSplitting::kNone) {
        const std::uint32_t cell = cell_of_pixel_[pixel];
        if (cell != dump_cell_) {
            visit(cell, 1.0);
        }
        return;
    }
    const BoxRecord& record = box_of_pixel_[pixel];
    const std::uint32_t first_cell = record.first_cell_and_spans & kCellMask;
    if (first_cell == dump_cell_) {
        const auto it = std::lower_bound(wide_pixels_.begin(), wide_pixels_.end(), pixel);
        if (it != wide_pixels_.end() && *it == pixel) {
            const auto k = static_cast<std::size_t>(it - wide_pixels_.begin());
            for (std::uint32_t e = wide_offsets_[k]; e < wide_offsets_[k + 1]; ++e) {
                visit(wide_contributions_[e].cell,
                      static_cast<double>(wide_contributions_[e].weight));
            }
        }
        return;
    }
    const std::uint32_t q_span = (record.first_cell_and_spans >> kCellBits) & 0xFU;
    const std::uint32_t chi_span = record.first_cell_and_spans >> (kCellBits + 4);
    if (chi_span == 1 && q_span <= kDirectQBins) {
        for (std::uint32_t k = 0; k < q_span; ++k) {
            visit(first_cell + k, record.weights[k] * kInvWeightScale);
        }
        return;
    }
    double q_weights[kMaxCompactSpan];
    double chi_weights[kMaxCompactSpan];
    expand_weights(q_span, record.weights[0], record.weights[1], q_weights);
    expand_weights(chi_span, record.weights[2], record.weights[3], chi_weights);
    const auto n_q = static_cast<std::uint32_t>(options_.axes.n_q);
    for (std::uint32_t a = 0; a < chi_span; ++a) {
        for (std::uint32_t b = 0; b < q_span; ++b) {
            visit(first_cell + a * n_q + b, chi_weights[a] * q_weights[b]);
        }
    }
}

double CakeIntegrator::dark_variance_share(double weight, double dark) const {
    if (corrections_.variance_model == VarianceModel::kIntegrating) {
        return weight * weight * read_variance_counts2_;
    }
    // Poisson variance of a mean of n dark frames: dark / n per pixel.
    return weight * weight * std::max(dark, 0.0) * dark_variance_scale_;
}

double CakeIntegrator::cell_variance(double raw_variance_sum, const CellTerms& terms,
                                     std::size_t cell) const {
    if (corrections_.variance_model == VarianceModel::kIntegrating) {
        // Photons only above the dark: sum c^2 (raw - dark), clipped at 0 per cell, not per
        // pixel. With mask_negative_after_dark (the default) every pixel here has
        // raw >= dark and the two agree; without it a pixel below its dark is read
        // noise around zero signal, and leaving it unclipped keeps the sum an unbiased
        // estimate of the photon variance (the cell clip only guards against a negative one).
        const double photons = raw_variance_sum - terms.dark_weight_sq[cell];
        return corrections_.counts_per_photon * std::max(photons, 0.0) + terms.dark_variance[cell];
    }
    return raw_variance_sum + terms.dark_variance[cell];
}

void CakeIntegrator::build_static_sums() {
    const std::size_t cells = options_.axes.cell_count();
    static_norm_.assign(cells, 0.0);
    static_count_.assign(cells, 0.0);
    static_dark_.assign(cells, 0.0);
    static_dark_variance_.assign(cells, 0.0);
    const bool integrating = corrections_.variance_model == VarianceModel::kIntegrating;
    static_dark_weight_sq_.assign(integrating ? cells : 0U, 0.0);
    dark_variance_scale_ = corrections_.dark_frame_count > 0
                               ? 1.0 / static_cast<double>(corrections_.dark_frame_count)
                               : 0.0;
    // Integrating: one frame carries sigma_read^2, the mean of n dark frames sigma_read^2 / n.
    const double read_noise = corrections_.read_noise_counts.value_or(0.0);
    read_variance_counts2_ =
        integrating ? read_noise * read_noise * (1.0 + dark_variance_scale_) : 0.0;
    const bool has_dark = !corrections_.dark_counts.empty();
    contributing_pixels_ = 0;
    for (std::size_t pixel = 0; pixel < shape_.pixel_count(); ++pixel) {
        const double norm = pixel_norm_[pixel];
        if (norm <= 0.0) {
            continue;
        }
        const double dark = has_dark ? corrections_.dark_counts[pixel] : 0.0;
        bool contributes = false;
        for_each_contribution(pixel, [&](std::uint32_t cell, double weight) {
            static_norm_[cell] += weight * norm;
            static_count_[cell] += weight;
            static_dark_[cell] += weight * dark;
            static_dark_variance_[cell] += dark_variance_share(weight, dark);
            if (integrating) {
                static_dark_weight_sq_[cell] += weight * weight * dark;
            }
            contributes = true;
        });
        contributing_pixels_ += contributes ? 1U : 0U;
    }
}

std::size_t CakeIntegrator::accumulator_cells() const {
    // The cells, the dump cell, and padding that the direct bounding-box updates may touch.
    const bool split = options_.splitting == PixelSplitting::kBoundingBox;
    return options_.axes.cell_count() + 1U + (split ? kDirectQBins - 1U : 0U);
}

std::size_t CakeIntegrator::lookup_size_bytes() const {
    return cell_of_pixel_.size() * sizeof(std::uint32_t) +
           box_of_pixel_.size() * sizeof(BoxRecord) + wide_pixels_.size() * sizeof(std::uint32_t) +
           wide_offsets_.size() * sizeof(std::uint32_t) +
           wide_contributions_.size() * sizeof(Contribution);
}

// Per-frame scratch reused from frame to frame: per-thread partial sums and the pixels excluded
// in this frame, plus per-cell terms corrected for those exclusions.
struct CakeIntegrator::Scratch {
    std::mutex mutex;  // one frame at a time per integrator; its threads share the frame
    std::vector<std::vector<std::uint64_t>> integer_sums;  // per thread, cells + dump
    std::vector<std::vector<double>> double_sums;          // per thread, (c v, c^2 v) per cell
    std::vector<std::vector<std::uint32_t>> rejected;      // per thread
    std::vector<double> dark;
    std::vector<double> dark_variance;
    std::vector<double> dark_weight_sq;
    std::vector<double> norm;
    std::vector<double> count;
    bool integer = false;
};

CakeIntegrator::CakeIntegrator() = default;
CakeIntegrator::CakeIntegrator(CakeIntegrator&&) noexcept = default;
CakeIntegrator& CakeIntegrator::operator=(CakeIntegrator&&) noexcept = default;
CakeIntegrator::~CakeIntegrator() = default;

Result<void> CakeIntegrator::check_frame(const FrameView& frame) const {
    if (frame.shape != shape_) {
        return fail(ErrorCode::kInvalidArgument,
                    "frame shape {}x{} does not match the detector's {}x{}", frame.shape.rows,
                    frame.shape.cols, shape_.rows, shape_.cols);
    }
    const std::size_t span_size =
        std::visit([](const auto& pixels) { return pixels.size(); }, frame.pixels);
    if (span_size != shape_.pixel_count()) {
        return fail(ErrorCode::kCorrupt, "frame holds {} pixels but its shape {}x{} needs {}",
                    span_size, shape_.rows, shape_.cols, shape_.pixel_count());
    }
    const double exposure_s = frame.exposure_s.value_or(1.0);
    if (!(exposure_s > 0.0) || !std::isfinite(exposure_s)) {
        return fail(ErrorCode::kInvalidArgument, "exposure time {} s is not positive", exposure_s);
    }
    return {};
}

Result<Cake> CakeIntegrator::integrate(const FrameView& frame) const {
    Cake cake;
    if (auto done = integrate_into(frame, cake); !done) {
        return tl::unexpected(done.error());
    }
    return cake;
}

CakeIntegrator::CellTerms CakeIntegrator::sum_frame(const FrameView& frame) const {
    std::visit([&](const auto& pixels) { sum_pixels(pixels); }, frame.pixels);
    Scratch& scratch = *scratch_;
    CellTerms terms{static_dark_.data(), static_dark_variance_.data(), static_norm_.data(),
                    static_count_.data(), static_dark_weight_sq_.data()};
    bool any_rejected = false;
    for (const auto& list : scratch.rejected) {
        any_rejected = any_rejected || !list.empty();
    }
    if (!any_rejected) {
        return terms;
    }
    // Pixels excluded in this frame only: copy the static terms and take back their share.
    scratch.dark = static_dark_;
    scratch.dark_variance = static_dark_variance_;
    scratch.dark_weight_sq = static_dark_weight_sq_;
    scratch.norm = static_norm_;
    scratch.count = static_count_;
    const float* dark =
        corrections_.dark_counts.empty() ? nullptr : corrections_.dark_counts.data();
    const bool integrating = corrections_.variance_model == VarianceModel::kIntegrating;
    for (const auto& list : scratch.rejected) {
        for (const std::uint32_t pixel : list) {
            const double norm = pixel_norm_[pixel];
            const double d = dark != nullptr ? static_cast<double>(dark[pixel]) : 0.0;
            for_each_contribution(pixel, [&](std::uint32_t cell, double weight) {
                scratch.dark[cell] -= weight * d;
                scratch.dark_variance[cell] -= dark_variance_share(weight, d);
                if (integrating) {
                    scratch.dark_weight_sq[cell] -= weight * weight * d;
                }
                scratch.norm[cell] -= weight * norm;
                scratch.count[cell] -= weight;
            });
        }
    }
    return CellTerms{scratch.dark.data(), scratch.dark_variance.data(), scratch.norm.data(),
                     scratch.count.data(), scratch.dark_weight_sq.data()};
}

Result<void> CakeIntegrator::integrate_into(const FrameView& frame, Cake& cake) const {
    if (auto valid = check_frame(frame); !valid) {
        return valid;
    }
    const std::lock_guard lock(scratch_->mutex);
    const CellTerms terms = sum_frame(frame);
    const Scratch& scratch = *scratch_;
    const CakeAxes& axes = options_.axes;
    const std::size_t n_q = axes.n_q;
    const double inv_t = 1.0 / frame.exposure_s.value_or(1.0);
    const double inv_t2 = inv_t * inv_t;
    const double nan = std::numeric_limits<double>::quiet_NaN();

    cake.axes = axes;
    cake.frame_count = 1;
    cake.q_inv_angstrom.resize(n_q);
    cake.chi_deg.resize(axes.n_chi);
    for (std::size_t iq = 0; iq < n_q; ++iq) {
        cake.q_inv_angstrom[iq] = axes.q_centre(iq);
    }
    for (std::size_t ichi = 0; ichi < axes.n_chi; ++ichi) {
        cake.chi_deg[ichi] = axes.chi_centre_deg(ichi);
    }
    cake.intensity.resize(axes.cell_count());
    cake.variance.resize(axes.cell_count());
    cake.count.resize(axes.cell_count());
    // The 1D sums are gathered in the same pass; the output vectors hold them until divided.
    cake.intensity_1d.assign(n_q, 0.0);
    cake.variance_1d.assign(n_q, 0.0);
    cake.count_1d.assign(n_q, 0.0);
    std::vector<double>& norm_1d = norm_1d_scratch_;
    norm_1d.assign(n_q, 0.0);

    const std::uint64_t* integer_sums = scratch.integer ? scratch.integer_sums[0].data() : nullptr;
    const double* double_sums = scratch.integer ? nullptr : scratch.double_sums[0].data();
    for (std::size_t c = 0, iq = 0; c < axes.cell_count(); ++c, iq = (iq + 1 == n_q ? 0 : iq + 1)) {
        const double count = terms.count[c];
        const double norm = terms.norm[c];
        if (!(count > kMinCellCount) || !(norm > 0.0)) {
            cake.intensity[c] = nan;
            cake.variance[c] = nan;
            cake.count[c] = 0.0;
            continue;
        }
        double raw;
        double raw_variance;
        if (integer_sums != nullptr) {
            raw = static_cast<double>(integer_sums[c]);
            raw_variance = raw;
        } else {
            raw = double_sums[2 * c];
            raw_variance = std::max(double_sums[2 * c + 1], 0.0);
        }
        const double signal = (raw - terms.dark[c]) * inv_t;
        const double variance = cell_variance(raw_variance, terms, c) * inv_t2;
        const double inv_norm = 1.0 / norm;
        cake.intensity[c] = signal * inv_norm;
        cake.variance[c] = variance * inv_norm * inv_norm;
        cake.count[c] = count;
        cake.intensity_1d[iq] += signal;  // iq = c mod n_q, stepped rather than divided
        cake.variance_1d[iq] += variance;
        cake.count_1d[iq] += count;
        norm_1d[iq] += norm;
    }
    for (std::size_t iq = 0; iq < n_q; ++iq) {
        if (norm_1d[iq] > 0.0) {
            cake.intensity_1d[iq] /= norm_1d[iq];
            cake.variance_1d[iq] /= norm_1d[iq] * norm_1d[iq];
        } else {
            cake.intensity_1d[iq] = nan;
            cake.variance_1d[iq] = nan;
        }
    }
    return {};
}

Result<void> CakeIntegrator::accumulate(const FrameView& frame, CakeAccumulator& sums) const {
    if (auto valid = check_frame(frame); !valid) {
        return valid;
    }
    if (sums.frame_count_ == 0) {
        sums = CakeAccumulator(options_.axes);
    } else if (sums.signal_.size() != options_.axes.cell_count() ||
               sums.axes_.n_q != options_.axes.n_q ||
               sums.axes_.q_min_inv_angstrom != options_.axes.q_min_inv_angstrom ||
               sums.axes_.q_max_inv_angstrom != options_.axes.q_max_inv_angstrom) {
        return fail(ErrorCode::kInvalidArgument, "these sums hold {} frames of another cake layout",
                    sums.frame_count_);
    }
    const std::lock_guard lock(scratch_->mutex);
    const CellTerms terms = sum_frame(frame);
    const Scratch& scratch = *scratch_;
    // Fold the frame into the running sums: subtract the dark, divide by the exposure (Poisson
    // variance scales with its square), add the frame's normalisation.
    const double inv_t = 1.0 / frame.exposure_s.value_or(1.0);
    const double inv_t2 = inv_t * inv_t;
    for (std::size_t c = 0; c < options_.axes.cell_count(); ++c) {
        double raw;
        double raw_variance;
        if (scratch.integer) {
            raw = static_cast<double>(scratch.integer_sums[0][c]);
            raw_variance = raw;
        } else {
            raw = scratch.double_sums[0][2 * c];
            raw_variance = std::max(scratch.double_sums[0][2 * c + 1], 0.0);
        }
        sums.signal_[c] += (raw - terms.dark[c]) * inv_t;
        sums.variance_[c] += cell_variance(raw_variance, terms, c) * inv_t2;
        sums.norm_[c] += terms.norm[c];
        sums.count_[c] += terms.count[c];
    }
    ++sums.frame_count_;
    return {};
}

template <class Pixel>
void CakeIntegrator::sum_pixels(std::span<const Pixel> raw) const {
    constexpr bool kExactSums = std::is_integral_v<Pixel> && std::is_unsigned_v<Pixel>;
    const bool split = options_.splitting == PixelSplitting::kBoundingBox;
    const std::size_t n_acc = accumulator_cells();
    const unsigned threads = pool_->size();
    const float* dark =
        corrections_.dark_counts.empty() ? nullptr : corrections_.dark_counts.data();
    Scratch& scratch = *scratch_;

    const TypedThresholds<Pixel> fast = typed_thresholds<Pixel>(thresholds_);
    const double saturation = thresholds_.reject_high;
    const bool mask_negative = corrections_.mask_negative_after_dark;
    // Slow-path decision for a value outside the fast range: is the pixel excluded this frame?
    const auto rejected_now = [&](Pixel value, std::size_t pixel) {
        const double v = static_cast<double>(value);
        if (!std::isfinite(v) || v >= saturation) {
            return true;
        }
        const double d = dark != nullptr ? static_cast<double>(dark[pixel]) : 0.0;
        return mask_negative && v < d;
    };

    // Unsigned integer frames without splitting sum exactly in 64-bit integers, and their
    // Poisson variance sum equals the signal sum; everything else sums (c v, c^2 v) in double.
    scratch.integer = kExactSums && !split;
    scratch.rejected.resize(threads);
    if (scratch.integer) {
        scratch.integer_sums.resize(threads);
    } else {
        scratch.double_sums.resize(threads);
    }

    const std::size_t rows = shape_.rows;
    const std::size_t cols = shape_.cols;
    const std::size_t row_step = (rows + threads - 1U) / threads;
    pool_->run([&](unsigned chunk) {
        const std::size_t row_begin = std::min(rows, chunk * row_step);
        const std::size_t row_end = std::min(rows, row_begin + row_step);
        std::vector<std::uint32_t>& my_rejected = scratch.rejected[chunk];
        my_rejected.clear();
        const Pixel* values = raw.data();
        if (!split) {
            const std::uint32_t* lut = cell_of_pixel_.data();
            if constexpr (kExactSums) {
                auto& sums = scratch.integer_sums[chunk];
                sums.assign(n_acc, 0);
                std::uint64_t* acc = sums.data();
                for_each_pixel(row_begin * cols, row_end * cols,
                               [&](std::size_t i) ANISOFLOW_ALWAYS_INLINE {
                                   const Pixel v = values[i];
                                   const std::uint32_t cell = lut[i];
                                   if (in_fast_range(v, fast)) [[likely]] {
                                       acc[cell] += v;
                                   } else if (cell != dump_cell_) {
                                       if (rejected_now(v, i)) {
                                           my_rejected.push_back(static_cast<std::uint32_t>(i));
                                       } else {
                                           acc[cell] += v;
                                       }
                                   }
                               });
                return;
            }
            auto& sums = scratch.double_sums[chunk];
            sums.assign(2 * n_acc, 0.0);
            double* acc = sums.data();
            for_each_pixel(row_begin * cols, row_end * cols,
                           [&](std::size_t i) ANISOFLOW_ALWAYS_INLINE {
                               const Pixel v = values[i];
                               const std::uint32_t cell = lut[i];
                               bool take = in_fast_range(v, fast);
                               if (!take && cell != dump_cell_) {
                                   if (rejected_now(v, i)) {
                                       my_rejected.push_back(static_cast<std::uint32_t>(i));
                                   } else {
                                       take = true;
                                   }
                               }
                               if (take) {
                                   const auto value = static_cast<double>(v);
                                   acc[2 * std::size_t{cell}] += value;
                                   acc[2 * std::size_t{cell} + 1] += value;
                               }
                           });
            return;
        }
        auto& sums = scratch.double_sums[chunk];
        sums.assign(2 * n_acc, 0.0);
        const BoxRows rows_to_sum{box_of_pixel_.data(), dump_cell_,
                                  static_cast<std::uint32_t>(options_.axes.n_q), row_begin * cols,
                                  row_end * cols};
        sum_box_rows(rows_to_sum, values, sums.data(), fast, rejected_now, my_rejected);
    });

    // Wide bounding-box pixels (near the beam centre) with their explicit weights.
    if (split) {
        double* acc = scratch.double_sums[0].data();
        for (std::size_t k = 0; k < wide_pixels_.size(); ++k) {
            const std::uint32_t pixel = wide_pixels_[k];
            const Pixel v = raw[pixel];
            if (!in_fast_range(v, fast) && rejected_now(v, pixel)) {
                scratch.rejected[0].push_back(pixel);
                continue;
            }
            const auto value = static_cast<double>(v);
            for (std::uint32_t e = wide_offsets_[k]; e < wide_offsets_[k + 1]; ++e) {
                const Contribution& c = wide_contributions_[e];
                const double w = c.weight;
                acc[2 * std::size_t{c.cell}] += w * value;
                acc[2 * std::size_t{c.cell} + 1] += w * w * value;
            }
        }
    }

    // Reduce the per-thread partial sums into thread 0's, each thread a slice of the cells.
    if (threads > 1) {
        const std::size_t width = scratch.integer ? n_acc : 2 * n_acc;
        const std::size_t slice = (width + threads - 1U) / threads;
        pool_->run([&](unsigned chunk) {
            const std::size_t begin = std::min(width, chunk * slice);
            const std::size_t end = std::min(width, begin + slice);
            for (unsigned t = 1; t < threads; ++t) {
                if (scratch.integer) {
                    auto& into = scratch.integer_sums[0];
                    const auto& from = scratch.integer_sums[t];
                    for (std::size_t c = begin; c < end; ++c) {
                        into[c] += from[c];
                    }
                } else {
                    auto& into = scratch.double_sums[0];
                    const auto& from = scratch.double_sums[t];
                    for (std::size_t c = begin; c < end; ++c) {
                        into[c] += from[c];
                    }
                }
            }
        });
    }
}

}  // namespace anisoflow::reduce
