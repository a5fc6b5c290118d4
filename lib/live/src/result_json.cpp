#include "anisoflow/live/result_json.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "anisoflow/transport/payload.hpp"

namespace anisoflow::live {

namespace {

struct CurveName {
    const char* key;
    const char* x_name;
    const char* x_unit;
    const char* unit;
};

// stream.proto's CurveKind, in order from S0 (docs/archive.md uses the same group names).
constexpr CurveName kCurveNames[] = {
    {"s0", "q", "1/angstrom", ""},
    {"s2", "q", "1/angstrom", ""},
    {"g0", "r", "angstrom", ""},
    {"g2", "r", "angstrom", ""},
    {"affine_g2", "r", "angstrom", ""},
    {"eps_r", "r", "angstrom", ""},
    {"reduced_g", "r", "angstrom", "1/angstrom^2"},
};

// A column of values as a JSON array; NaN and infinities (unknown) as null.
nlohmann::json column(std::span<const double> values) {
    nlohmann::json out = nlohmann::json::array();
    for (const double v : values) {
        out.push_back(std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr));
    }
    return out;
}

}  // namespace

std::string_view mechanism_name(pb::Mechanism mechanism) {
    switch (mechanism) {
        case pb::MECHANISM_BOND_STRETCHING:
            return "bond-stretching";
        case pb::MECHANISM_BOND_ROTATION:
            return "bond-rotation";
        case pb::MECHANISM_ISOTROPIC:
            return "isotropic";
        case pb::MECHANISM_UNDETERMINED:
            return "undetermined";
        default:
            return "unspecified";
    }
}

std::string_view mode_name(pb::ExtractionMode mode) {
    return mode == pb::EXTRACTION_MODE_SINGLE ? "single" : "pn";
}

std::string_view normalisation_name(pb::Normalisation normalisation) {
    return normalisation == pb::NORMALISATION_ADHOC ? "adhoc" : "high-Q";
}

nlohmann::json summary_json(const pb::AnalysisResult& r) {
    return {
        {"alpha", r.alpha()},
        {"alpha_stderr", r.alpha_stderr()},
        {"alpha_reduced_chi2", r.alpha_reduced_chi2()},
        {"alpha_full_range", r.alpha_full_range()},
        {"alpha_full_range_stderr", r.alpha_full_range_stderr()},
        {"alpha_full_range_reduced_chi2", r.alpha_full_range_reduced_chi2()},
        {"eps_aff", r.eps_aff()},
        {"eps_aff_stderr", r.eps_aff_stderr()},
        {"nu", r.nu()},
        {"r_c_angstrom",
         r.has_r_c_angstrom() ? nlohmann::json(r.r_c_angstrom()) : nlohmann::json(nullptr)},
        {"mechanism", std::string(mechanism_name(r.mechanism()))},
        {"corr_stretching", r.corr_stretching()},
        {"corr_rotation", r.corr_rotation()},
        {"first_peak_shift_angstrom", r.first_peak_shift_angstrom()},
        {"s2_chi2", r.s2_chi2()},
        {"s2_dof", r.s2_dof()},
        {"n_frames_p", r.n_frames_p()},
        {"n_frames_n", r.n_frames_n()},
        {"mode", std::string(mode_name(r.mode()))},
        {"normalisation", std::string(normalisation_name(r.normalisation()))},
        {"version", r.version()},
        {"frames_received",
         {{"data_p", r.frames().data_p()},
          {"data_n", r.frames().data_n()},
          {"dark", r.frames().dark()},
          {"flat", r.frames().flat()},
          {"background", r.frames().background()}}},
    };
}

nlohmann::json curves_json(const transport::ResultMessage& message) {
    nlohmann::json curves = nlohmann::json::object();
    const pb::AnalysisResult& h = message.header;
    for (int i = 0; i < h.curves_size() && static_cast<std::size_t>(i) < message.curves.size();
         ++i) {
        const int kind = h.curves(i).kind();
        if (kind < 1 || kind > static_cast<int>(std::size(kCurveNames))) {
            continue;
        }
        const CurveName& name = kCurveNames[kind - 1];
        // decode() checked the part holds 3 x n_points float64: x, value, variance.
        const std::vector<double> values =
            transport::copy_values<double>(message.curves[static_cast<std::size_t>(i)]);
        const std::size_t n = values.size() / 3;
        const std::span<const double> all(values);
        curves[name.key] = {
            {"x_name", name.x_name},
            {"x_unit", name.x_unit},
            {"unit", name.unit},
            {"x", column(all.subspan(0, n))},
            {"value", column(all.subspan(n, n))},
            {"variance", column(all.subspan(2 * n, n))},
        };
    }
    return curves;
}

nlohmann::json image_json(const transport::ResultMessage& message) {
    const pb::AnalysisResult& h = message.header;
    if (h.images_size() == 0 || message.images.empty()) {
        return nullptr;
    }
    const pb::CakeImage& image = h.images(0);
    // decode() checked the part holds n_chi x n_q float64.
    const std::vector<double> values = transport::copy_values<double>(message.images.front());
    const std::size_t n_q = image.n_q();
    const std::size_t n_chi = image.n_chi();
    const std::size_t group = (n_q + kMaxImageColumns - 1) / kMaxImageColumns;
    const std::size_t columns = (n_q + group - 1) / group;
    const double q_step =
        (image.q_axis().upper() - image.q_axis().lower()) / static_cast<double>(n_q);
    const double chi_step =
        (image.chi_axis().upper() - image.chi_axis().lower()) / static_cast<double>(n_chi);
    std::vector<double> q(columns);
    for (std::size_t c = 0; c < columns; ++c) {
        const std::size_t first = c * group;
        const std::size_t last = std::min(n_q, first + group);  // one past
        q[c] = image.q_axis().lower() + 0.5 * static_cast<double>(first + last) * q_step;
    }
    std::vector<double> chi(n_chi);
    for (std::size_t r = 0; r < n_chi; ++r) {
        chi[r] = image.chi_axis().lower() + (static_cast<double>(r) + 0.5) * chi_step;
    }
    nlohmann::json rows = nlohmann::json::array();
    for (std::size_t r = 0; r < n_chi; ++r) {
        nlohmann::json row = nlohmann::json::array();
        for (std::size_t c = 0; c < columns; ++c) {
            double sum = 0.0;
            std::size_t n = 0;
            for (std::size_t iq = c * group; iq < std::min(n_q, (c + 1) * group); ++iq) {
                const double v = values[r * n_q + iq];
                if (std::isfinite(v)) {
                    sum += v;
                    ++n;
                }
            }
            row.push_back(n > 0 ? nlohmann::json(sum / static_cast<double>(n))
                                : nlohmann::json(nullptr));
        }
        rows.push_back(std::move(row));
    }
    return {{"kind", image.kind() == pb::CAKE_IMAGE_KIND_PN_RELATIVE_DIFFERENCE
                         ? "pn_relative_difference"
                         : "unspecified"},
            {"unit", ""},
            {"q_unit", "1/angstrom"},
            {"chi_unit", "deg"},
            {"q", q},
            {"chi", chi},
            {"values", std::move(rows)}};
}

}  // namespace anisoflow::live
