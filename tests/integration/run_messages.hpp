#pragma once
// Messages of a small test run, shared by the integration tests that act as a service's peer
// (archive, analyze, ingest and hostile-input tests): a detector of side x side uint16 pixels
// with a full ExperimentConfig that every service accepts, its frames and their cakes.

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/payload.hpp"

namespace anisoflow::testing {

inline stream::v1::RunStart small_run_start(const std::string& run_id, std::uint32_t side) {
    namespace pb = ::anisoflow::stream::v1;
    pb::RunStart start;
    start.set_run_id(run_id);
    start.set_source_version("test");
    pb::ExperimentConfig& c = *start.mutable_config();
    pb::PoniGeometry& g = *c.mutable_geometry();
    g.set_detector_rows(side);
    g.set_detector_cols(side);
    g.set_pixel1_m(400e-6);
    g.set_pixel2_m(400e-6);
    g.set_distance_m(0.08);
    g.set_poni1_m(side * 0.5 * 400e-6);
    g.set_poni2_m(side * 0.5 * 400e-6);
    g.set_wavelength_m(0.123984e-10);  // 100 keV
    c.set_composition("Cu50Zr50");
    c.set_density_per_cubic_angstrom(0.06);
    c.set_nu(0.37);
    c.set_mode(pb::EXTRACTION_MODE_PN);
    c.set_q_min_inv_angstrom(1.0);
    c.set_q_max_inv_angstrom(10.0);
    c.set_n_q(30);
    c.set_n_chi(8);
    c.set_r_max_angstrom(20.0);
    c.set_n_r(200);
    c.set_r_fit_min_angstrom(2.3);
    c.set_r_fit_max_angstrom(15.0);
    c.set_normalisation(pb::NORMALISATION_HIGH_Q);
    c.set_r_poly_angstrom(0.9);
    c.set_polarization_factor(0.99);
    return start;
}

// Sequences 0 and 1 are darks, 2 the flat, then data frames alternate P, N, P, ...
inline constexpr std::uint64_t kSmallRunDarks = 2;
inline constexpr std::uint64_t kSmallRunFirstData = kSmallRunDarks + 1;

inline stream::v1::FrameKind small_run_kind(std::uint64_t sequence) {
    if (sequence < kSmallRunDarks) {
        return stream::v1::FRAME_KIND_DARK;
    }
    return sequence < kSmallRunFirstData ? stream::v1::FRAME_KIND_FLAT
                                         : stream::v1::FRAME_KIND_DATA;
}

inline stream::v1::Orientation small_run_orientation(std::uint64_t sequence) {
    if (small_run_kind(sequence) != stream::v1::FRAME_KIND_DATA) {
        return stream::v1::ORIENTATION_UNSPECIFIED;
    }
    return (sequence - kSmallRunFirstData) % 2 == 0 ? stream::v1::ORIENTATION_P
                                                    : stream::v1::ORIENTATION_N;
}

inline stream::v1::FrameHeader small_run_header(const std::string& run_id, std::uint64_t sequence,
                                                std::uint32_t side) {
    namespace pb = ::anisoflow::stream::v1;
    pb::FrameHeader header;
    header.set_run_id(run_id);
    header.set_sequence(sequence);
    header.set_kind(small_run_kind(sequence));
    header.set_orientation(small_run_orientation(sequence));
    header.set_encoding(pb::ENCODING_RAW);
    header.set_dtype(pb::PIXEL_DTYPE_UINT16);
    header.set_rows(side);
    header.set_cols(side);
    header.set_exposure_s(1.0);
    header.set_uncompressed_size_bytes(std::uint64_t{side} * side * 2);
    return header;
}

// A RAW uint16 frame as a source or ingest's raw feed sends it; its pixels carry its sequence.
inline transport::Multipart small_run_frame(const std::string& run_id, std::uint64_t sequence,
                                            std::uint32_t side) {
    std::vector<std::uint16_t> pixels(std::size_t{side} * side,
                                      static_cast<std::uint16_t>(100 + sequence));
    auto parts = transport::encode_frame(small_run_header(run_id, sequence, side),
                                         transport::make_payload(std::move(pixels)));
    EXPECT_TRUE(parts) << parts.error().message;
    return parts ? std::move(*parts) : transport::Multipart{};
}

// The header of a data frame's cake on the run's cake grid, as reduce sends it: the four sums of
// docs/protocol.md ("Reduced frames"), one part each.
inline stream::v1::ReducedFrame small_run_cake_header(const stream::v1::RunStart& start,
                                                      std::uint64_t sequence,
                                                      stream::v1::Orientation orientation) {
    namespace pb = ::anisoflow::stream::v1;
    const pb::ExperimentConfig& c = start.config();
    pb::ReducedFrame header;
    header.set_run_id(start.run_id());
    header.set_sequence(sequence);
    header.set_kind(pb::FRAME_KIND_DATA);
    header.set_orientation(orientation);
    header.set_n_q(c.n_q());
    header.set_n_chi(c.n_chi());
    header.mutable_q_axis()->set_lower(c.q_min_inv_angstrom());
    header.mutable_q_axis()->set_upper(c.q_max_inv_angstrom());
    header.mutable_q_axis()->set_unit("1/angstrom");
    header.mutable_chi_axis()->set_lower(-180.0);
    header.mutable_chi_axis()->set_upper(180.0);
    header.mutable_chi_axis()->set_unit("deg");
    header.set_frames_accumulated(1);
    header.set_worker("reduce-test");
    for (const auto quantity : {pb::CAKE_QUANTITY_SIGNAL_SUM, pb::CAKE_QUANTITY_VARIANCE_SUM,
                                pb::CAKE_QUANTITY_NORM_SUM, pb::CAKE_QUANTITY_COUNT_SUM}) {
        header.add_parts()->set_quantity(quantity);
    }
    return header;
}

// A data frame's cake as reduce sends it and analyze forwards it; every bin of every sum holds
// `value`.
inline transport::Multipart small_run_cake(const stream::v1::RunStart& start,
                                           std::uint64_t sequence,
                                           stream::v1::Orientation orientation,
                                           double value = 1.0) {
    const stream::v1::ReducedFrame header = small_run_cake_header(start, sequence, orientation);
    std::vector<zmq::message_t> parts;
    parts.reserve(static_cast<std::size_t>(header.parts_size()));
    for (int i = 0; i < header.parts_size(); ++i) {
        parts.push_back(transport::make_payload(
            std::vector<double>(std::size_t{header.n_q()} * header.n_chi(), value)));
    }
    auto message = transport::encode_reduced(header, std::move(parts));
    EXPECT_TRUE(message) << message.error().message;
    return message ? std::move(*message) : transport::Multipart{};
}

}  // namespace anisoflow::testing
