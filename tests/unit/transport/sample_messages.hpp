#pragma once
// Valid sample headers and payloads of every message kind, for the transport tests.

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/payload.hpp"

namespace anisoflow::transport::sample {

inline const std::string kRunId = "2024-05-17T10:31:02Z-ZrCu-01";

/// Deterministic, non-trivial values (every byte position varies), so a payload that comes back
/// byte-identical cannot be a coincidence.
template <class T>
std::vector<T> values(std::size_t n, std::uint64_t seed) {
    std::vector<T> out(n);
    std::uint64_t state = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (auto& value : out) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        value = static_cast<T>(state % 1000003);
    }
    return out;
}

inline pb::RunStart run_start() {
    pb::RunStart start;
    start.set_run_id(kRunId);
    start.set_started_unix_ns(1715941862000000000);
    start.set_source_version("0.1.0");
    pb::ExperimentConfig& c = *start.mutable_config();
    pb::PoniGeometry& g = *c.mutable_geometry();
    g.set_distance_m(0.912);
    g.set_poni1_m(0.2048);
    g.set_poni2_m(0.2052);
    g.set_rot1_rad(0.001);
    g.set_rot2_rad(-0.002);
    g.set_rot3_rad(0.0);
    g.set_wavelength_m(1.2398e-11);
    g.set_pixel1_m(200e-6);
    g.set_pixel2_m(200e-6);
    g.set_detector_rows(2048);
    g.set_detector_cols(2048);
    g.set_detector_type("Perkin");
    c.set_composition("Zr52.5Cu17.9Ni14.6Al10Ti5");
    c.set_density_per_cubic_angstrom(0.0623);
    c.set_nu(0.36);
    c.set_loading_axis_chi_deg(90.0);
    c.set_mode(pb::EXTRACTION_MODE_PN);
    c.set_q_min_inv_angstrom(0.5);
    c.set_q_max_inv_angstrom(24.0);
    c.set_n_q(1000);
    c.set_n_chi(72);
    c.set_r_max_angstrom(25.0);
    c.set_n_r(2000);
    c.set_r_fit_min_angstrom(2.3);
    c.set_r_fit_max_angstrom(20.0);
    c.set_normalisation(pb::NORMALISATION_HIGH_Q);
    c.set_q_norm_min_inv_angstrom(15.6);
    c.set_r_poly_angstrom(0.9);
    c.set_polarization_factor(0.99);
    c.set_lorch(false);
    c.mutable_frames_expected()->set_data_p(10);
    c.mutable_frames_expected()->set_data_n(10);
    c.mutable_frames_expected()->set_dark(5);
    return start;
}

inline pb::FrameHeader frame_header(std::uint32_t rows, std::uint32_t cols, pb::PixelDtype dtype,
                                    std::uint64_t sequence = 7) {
    pb::FrameHeader h;
    h.set_run_id(kRunId);
    h.set_sequence(sequence);
    h.set_orientation(pb::ORIENTATION_P);
    h.set_kind(pb::FRAME_KIND_DATA);
    h.set_acquired_unix_ns(1715941863000000000);
    h.set_sent_unix_ns(1715941863001000000);
    h.set_exposure_s(0.1);
    h.set_encoding(pb::ENCODING_RAW);
    h.set_dtype(dtype);
    h.set_rows(rows);
    h.set_cols(cols);
    return h;
}

inline pb::ReducedFrame reduced_header(std::uint32_t n_q, std::uint32_t n_chi) {
    pb::ReducedFrame h;
    h.set_run_id(kRunId);
    h.set_sequence(7);
    h.set_orientation(pb::ORIENTATION_N);
    h.set_kind(pb::FRAME_KIND_DATA);
    h.set_n_q(n_q);
    h.set_n_chi(n_chi);
    h.mutable_q_axis()->set_lower(0.5);
    h.mutable_q_axis()->set_upper(24.0);
    h.mutable_q_axis()->set_unit("1/angstrom");
    h.mutable_chi_axis()->set_lower(-180.0);
    h.mutable_chi_axis()->set_upper(180.0);
    h.mutable_chi_axis()->set_unit("deg");
    h.add_parts()->set_quantity(pb::CAKE_QUANTITY_INTENSITY);
    h.add_parts()->set_quantity(pb::CAKE_QUANTITY_VARIANCE);
    h.add_parts()->set_quantity(pb::CAKE_QUANTITY_COUNT);
    h.set_frames_accumulated(1);
    h.set_worker("reduce-0");
    return h;
}

/// One n_chi x n_q float64 part per entry of header.parts().
inline std::vector<zmq::message_t> cake_parts(const pb::ReducedFrame& h) {
    std::vector<zmq::message_t> parts;
    parts.reserve(static_cast<std::size_t>(h.parts_size()));
    for (int i = 0; i < h.parts_size(); ++i) {
        parts.push_back(make_payload(
            values<double>(std::size_t{h.n_q()} * h.n_chi(), 100 + static_cast<unsigned>(i))));
    }
    return parts;
}

inline pb::AnalysisResult result_header(std::uint64_t n_q_points, std::uint64_t n_r_points) {
    pb::AnalysisResult h;
    h.set_run_id(kRunId);
    h.set_alpha(0.0123);
    h.set_alpha_stderr(0.0004);
    h.set_alpha_reduced_chi2(1.07);
    h.set_alpha_full_range(0.0119);
    h.set_alpha_full_range_stderr(0.0003);
    h.set_alpha_full_range_reduced_chi2(1.2);
    h.set_eps_aff(0.0122);
    h.set_eps_aff_stderr(0.0004);
    h.set_nu(0.36);
    h.set_r_c_angstrom(7.5);
    h.set_mechanism(pb::MECHANISM_BOND_STRETCHING);
    h.set_corr_stretching(0.93);
    h.set_corr_rotation(0.12);
    h.set_first_peak_shift_angstrom(0.04);
    h.set_s2_chi2(5234.0);
    h.set_s2_dof(990);
    h.set_n_frames_p(10);
    h.set_n_frames_n(10);
    h.set_mode(pb::EXTRACTION_MODE_PN);
    h.set_normalisation(pb::NORMALISATION_HIGH_Q);
    h.set_version("0.1.0");
    h.mutable_frames()->set_data_p(10);
    h.mutable_frames()->set_data_n(10);
    h.set_is_final(true);
    for (auto kind : {pb::CURVE_KIND_S0, pb::CURVE_KIND_S2}) {
        auto* curve = h.add_curves();
        curve->set_kind(kind);
        curve->set_n_points(n_q_points);
    }
    for (auto kind :
         {pb::CURVE_KIND_G0, pb::CURVE_KIND_G2, pb::CURVE_KIND_AFFINE_G2, pb::CURVE_KIND_EPS_R}) {
        auto* curve = h.add_curves();
        curve->set_kind(kind);
        curve->set_n_points(n_r_points);
    }
    return h;
}

/// One 3 x n_points float64 part per entry of header.curves().
inline std::vector<zmq::message_t> curve_parts(const pb::AnalysisResult& h) {
    std::vector<zmq::message_t> parts;
    parts.reserve(static_cast<std::size_t>(h.curves_size()));
    for (int i = 0; i < h.curves_size(); ++i) {
        parts.push_back(make_payload(
            values<double>(3 * h.curves(i).n_points(), 200 + static_cast<unsigned>(i))));
    }
    return parts;
}

inline pb::RunEnd run_end() {
    pb::RunEnd end;
    end.set_run_id(kRunId);
    end.mutable_frames_sent()->set_data_p(10);
    end.mutable_frames_sent()->set_data_n(10);
    end.mutable_frames_sent()->set_dark(5);
    end.set_reason(pb::RUN_END_REASON_COMPLETED);
    end.set_ended_unix_ns(1715941900000000000);
    return end;
}

inline pb::Heartbeat heartbeat() {
    pb::Heartbeat beat;
    beat.set_service("reduce");
    beat.set_instance("node7-4242");
    beat.set_sent_unix_ns(1715941864000000000);
    beat.set_state(pb::SERVICE_STATE_RUNNING);
    beat.set_run_id(kRunId);
    return beat;
}

/// Part 0 serialized from `envelope` as is, followed by `payloads`: no checks, so tests can build
/// what encode_*() refuses to.
inline Multipart raw_message(const pb::Envelope& envelope,
                             std::vector<zmq::message_t> payloads = {}) {
    Multipart parts;
    const std::string bytes = envelope.SerializeAsString();
    parts.emplace_back(bytes.data(), bytes.size());
    for (auto& payload : payloads) {
        parts.push_back(std::move(payload));
    }
    return parts;
}

}  // namespace anisoflow::transport::sample
