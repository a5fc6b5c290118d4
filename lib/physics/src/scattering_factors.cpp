// Composition-averaged form factors and Compton scattering from xraylib (SPEC 5).

#include "anisoflow/physics/scattering_factors.hpp"

#include <cmath>
#include <cstddef>
#include <limits>
#include <numbers>

#include <xraylib/xraylib.h>

namespace anisoflow::physics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kMaxAtomicNumber = 98;

// xraylib's momentum transfer x = sin(theta)/lambda = Q / (4 pi), in 1/A (PACKAGES.md).
double xraylib_x(double q_inv_angstrom) { return q_inv_angstrom / (4.0 * std::numbers::pi); }

// Calls an xraylib function of (Z, x); NaN when xraylib reports an error.
template <class F>
double call_xraylib(F function, int z, double x) {
    xrl_error* error = nullptr;
    const double value = function(z, x, &error);
    if (error != nullptr) {
        xrl_error_free(error);
        return kNaN;
    }
    return value;
}

template <class Pick>
QCurve curve(const ScatteringFactors& factors, std::span<const double> q, Pick pick) {
    QCurve out;
    out.q_inv_angstrom.assign(q.begin(), q.end());
    out.value.resize(q.size());
    out.variance.assign(q.size(), 0.0);
    for (std::size_t i = 0; i < q.size(); ++i) {
        out.value[i] = pick(factors.at(q[i]));
    }
    return out;
}

}  // namespace

Result<ScatteringFactors> ScatteringFactors::from_composition(std::vector<Element> elements) {
    if (elements.empty()) {
        return fail(ErrorCode::kInvalidArgument, "composition has no elements");
    }
    double total = 0.0;
    for (const Element& e : elements) {
        if (e.z < 1 || e.z > kMaxAtomicNumber) {
            return fail(ErrorCode::kInvalidArgument,
                        "element '{}' has atomic number {} outside 1..{}", e.symbol, e.z,
                        kMaxAtomicNumber);
        }
        if (!(e.fraction > 0.0) || !std::isfinite(e.fraction)) {
            return fail(ErrorCode::kInvalidArgument,
                        "element '{}' has fraction {}; fractions must be positive", e.symbol,
                        e.fraction);
        }
        total += e.fraction;
    }
    for (Element& e : elements) {
        e.fraction /= total;
    }
    return ScatteringFactors(std::move(elements));
}

Result<ScatteringFactors> ScatteringFactors::from_formula(std::string_view formula) {
    auto elements = parse_composition(formula);
    if (!elements) {
        return tl::unexpected(elements.error());
    }
    return from_composition(std::move(*elements));
}

ScatteringAverages ScatteringFactors::at(double q_inv_angstrom) const {
    if (!(q_inv_angstrom >= 0.0) || !std::isfinite(q_inv_angstrom)) {
        return {kNaN, kNaN, kNaN};
    }
    const double x = xraylib_x(q_inv_angstrom);
    double mean_f = 0.0;
    double mean_f2 = 0.0;
    double compton = 0.0;
    for (const Element& e : elements_) {
        const double f = call_xraylib(FF_Rayl, e.z, x);
        mean_f += e.fraction * f;
        mean_f2 += e.fraction * f * f;
        // SF_Compt reports an error at x <= 0; the incoherent intensity vanishes there.
        if (x > 0.0) {
            compton += e.fraction * call_xraylib(SF_Compt, e.z, x);
        }
    }
    return {mean_f * mean_f, mean_f2, compton};
}

double ScatteringFactors::mean_f_squared(double q_inv_angstrom) const {
    return at(q_inv_angstrom).mean_f_squared;
}
double ScatteringFactors::mean_squared_f(double q_inv_angstrom) const {
    return at(q_inv_angstrom).mean_squared_f;
}
double ScatteringFactors::compton(double q_inv_angstrom) const {
    return at(q_inv_angstrom).compton;
}

QCurve ScatteringFactors::mean_f_squared(std::span<const double> q_inv_angstrom) const {
    return curve(*this, q_inv_angstrom,
                 [](const ScatteringAverages& a) { return a.mean_f_squared; });
}
QCurve ScatteringFactors::mean_squared_f(std::span<const double> q_inv_angstrom) const {
    return curve(*this, q_inv_angstrom,
                 [](const ScatteringAverages& a) { return a.mean_squared_f; });
}
QCurve ScatteringFactors::compton(std::span<const double> q_inv_angstrom) const {
    return curve(*this, q_inv_angstrom, [](const ScatteringAverages& a) { return a.compton; });
}

}  // namespace anisoflow::physics
