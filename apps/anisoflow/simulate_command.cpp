#include "simulate_command.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "anisoflow/atomistic/diffraction.hpp"
#include "anisoflow/atomistic/lammps_dump.hpp"
#include "anisoflow/core/clock.hpp"
#include "anisoflow/geometry/detector_geometry.hpp"
#include "anisoflow/io/frame_stack_writer.hpp"
#include "anisoflow/io/poni_file.hpp"
#include "anisoflow/physics/scattering_factors.hpp"
#include "anisoflow/sim/frame_renderer.hpp"
#include "anisoflow/sim/pair_distribution.hpp"
#include "anisoflow/sim/strained_structure.hpp"
#include "anisoflow/sim/structure_model.hpp"
#include "anisoflow/sim/tabulated_structure.hpp"
#include "anisoflow/transport/experiment.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/payload.hpp"
#include "anisoflow/transport/socket.hpp"

namespace anisoflow::app {

namespace {

int report(const Error& error) {
    std::fprintf(stderr, "anisoflow simulate: %s\n", error.message.c_str());
    return 1;
}

// The built-in detector: 200 um pixels, beam at the centre, 100 keV (lambda = 0.123984 A).
geometry::PoniGeometry builtin_geometry(const SimulateOptions& o) {
    geometry::PoniGeometry poni;
    poni.poni_version = "2.1";
    poni.detector = geometry::DetectorModel{"Detector", 200e-6, 200e-6, FrameShape{o.rows, o.cols}};
    poni.distance_m = o.distance_m;
    poni.poni1_m = 0.5 * static_cast<double>(o.rows) * 200e-6;
    poni.poni2_m = 0.5 * static_cast<double>(o.cols) * 200e-6;
    poni.wavelength_m = 0.123984e-10;
    return poni;
}

// A smooth, deterministic efficiency map around 1 (what a real flat field looks like).
std::vector<float> synthetic_flat(FrameShape shape, double variation) {
    std::vector<float> flat(shape.pixel_count());
    for (std::size_t r = 0; r < shape.rows; ++r) {
        for (std::size_t c = 0; c < shape.cols; ++c) {
            const double pattern =
                std::sin(2.0 * std::numbers::pi * static_cast<double>(r) / 97.0) *
                std::cos(2.0 * std::numbers::pi * static_cast<double>(c) / 131.0);
            flat[r * shape.cols + c] = static_cast<float>(1.0 + variation * pattern);
        }
    }
    return flat;
}

Result<void> write_stack(const std::filesystem::path& path, const std::vector<Frame>& frames,
                         PixelType type) {
    auto writer = io::FrameStackWriter::create(path, frames.front().shape, type);
    if (!writer) {
        return tl::unexpected(writer.error());
    }
    for (const Frame& frame : frames) {
        if (auto appended = writer->append(frame.view()); !appended) {
            return appended;
        }
    }
    return writer->close();
}

// The pair grid reaches at least this far (g0 - 1 is 3e-4 at 40 A; the S2 integrands are
// short-ranged, docs/physics-simulator.md) and past where a radial step or a rotation taper
// settles.
constexpr double kMinPairGridAngstrom = sim::PairGrid{}.r_max_angstrom;

// The first peak of S (which --counts-at-peak scales to) is sought below this Q.
constexpr double kPeakSearchMaxInvAngstrom = 6.0;

// The bond-rotation taper: g2 follows g0 - 1 over the first shells, gone by the fourth.
constexpr double kRotationTaperStartAngstrom = 7.0;
constexpr double kRotationTaperEndAngstrom = 9.0;

struct StrainModel {
    sim::StrainedStructure structure;
    double eps_aff = 0.0;       ///< the affine (long-range) strain: alpha = c eps_aff / sqrt5
    nlohmann::json parameters;  ///< what simulation.json records of the mode
    std::string summary;        ///< one line for the terminal
};

// The structure the frames are rendered from, per --mode (SPEC 4 normalisation throughout).
Result<StrainModel> strain_model(const SimulateOptions& o, const sim::HardSphereStructure& hs,
                                 double q_max_inv_angstrom) {
    if (o.mode == "none") {
        return StrainModel{sim::StrainedStructure::isotropic(hs), 0.0, nlohmann::json::object(),
                           "no strain"};
    }
    if (o.mode == "affine") {
        return StrainModel{sim::StrainedStructure::affine(hs, sim::UniaxialStrain{o.eps, o.nu}),
                           o.eps, nlohmann::json::object(),
                           fmt::format("exact affine strain eps={}", o.eps)};
    }
    const bool radial = o.mode == "radial";
    const sim::RadialStrainProfile profile{o.eps, o.radial_step_centre_angstrom,
                                           o.radial_step_width_angstrom, o.radial_inner_drop};
    if (radial &&
        (!(profile.step_width_angstrom > 0.0) || !(profile.step_centre_angstrom > 0.0) ||
         !std::isfinite(profile.inner_drop) || !std::isfinite(profile.step_centre_angstrom))) {
        return fail(
            ErrorCode::kInvalidArgument,
            "--radial-rc {} and --radial-width {} must be positive, --radial-drop {} finite",
            profile.step_centre_angstrom, profile.step_width_angstrom, profile.inner_drop);
    }
    if (!radial && !std::isfinite(o.rotation_amplitude)) {
        return fail(ErrorCode::kInvalidArgument, "--rotation-amplitude {} is not finite",
                    o.rotation_amplitude);
    }
    const double r_max = std::max(
        kMinPairGridAngstrom,
        std::ceil(radial ? profile.settled_beyond_angstrom() + 1.0 : kRotationTaperEndAngstrom));
    sim::PairGrid grid;
    grid.r_max_angstrom = r_max;
    auto g0 = sim::IsotropicPairDistribution::create(hs, grid);
    if (!g0) {
        return tl::unexpected(g0.error().with_context("--mode " + o.mode + ", --debye-waller"));
    }
    if (radial) {
        auto s2 = sim::radial_strain_s2(hs, *g0, profile, o.nu, q_max_inv_angstrom);
        if (!s2) {
            return tl::unexpected(s2.error());
        }
        nlohmann::json parameters = {
            {"profile", "eps(r) = eps_aff (1 - inner_drop / (1 + exp((r - r_c) / width)))"},
            {"step_centre_angstrom", profile.step_centre_angstrom},
            {"step_width_angstrom", profile.step_width_angstrom},
            {"inner_drop", profile.inner_drop},
            {"eps_inner", profile.eps(0.0)},
            {"g2", "(c / sqrt5) r d[eps(r) g0(r)]/dr, c = 2 (1 + nu) / 3"},
        };
        return StrainModel{sim::StrainedStructure::harmonic(hs, std::move(*s2)), o.eps,
                           std::move(parameters),
                           fmt::format("radial strain eps_aff={} stepping to {:.6g} below r_c={} A",
                                       o.eps, profile.eps(0.0), profile.step_centre_angstrom)};
    }
    sim::BondRotation rotation;
    rotation.taper_start_angstrom = kRotationTaperStartAngstrom;
    rotation.taper_end_angstrom = kRotationTaperEndAngstrom;
    rotation.beta = sim::BondRotation::beta_matching_affine(hs, *g0, o.eps, o.nu,
                                                            o.rotation_amplitude, rotation);
    auto s2 = sim::bond_rotation_s2(*g0, rotation, q_max_inv_angstrom);
    if (!s2) {
        return tl::unexpected(s2.error());
    }
    nlohmann::json parameters = {
        {"g2", "beta (g0(r) - 1) T(r), T = 1 below taper_start, raised cosine to 0 at taper_end"},
        {"beta", rotation.beta},
        {"amplitude", o.rotation_amplitude},
        {"eps", o.eps},
        {"taper_start_angstrom", rotation.taper_start_angstrom},
        {"taper_end_angstrom", rotation.taper_end_angstrom},
    };
    return StrainModel{sim::StrainedStructure::harmonic(hs, std::move(*s2)), 0.0,
                       std::move(parameters),
                       fmt::format("bond rotation beta={:.5g} (as strong as affine eps={} x {})",
                                   rotation.beta, o.eps, o.rotation_amplitude)};
}

// --md-axis: x, y, z or three comma-separated components.
Result<atomistic::Vec3> parse_md_axis(const std::string& text) {
    if (text == "x" || text == "y" || text == "z") {
        atomistic::Vec3 axis{};
        axis[static_cast<std::size_t>(text[0] - 'x')] = 1.0;
        return axis;
    }
    atomistic::Vec3 axis{};
    std::size_t start = 0;
    for (std::size_t k = 0; k < 3; ++k) {
        const std::size_t end = k < 2 ? text.find(',', start) : text.size();
        if (end == std::string::npos) {
            break;
        }
        const std::string part = text.substr(start, end - start);
        char* stop = nullptr;
        axis[k] = std::strtod(part.c_str(), &stop);
        if (part.empty() || stop != part.c_str() + part.size()) {
            return fail(ErrorCode::kInvalidArgument,
                        "--md-axis {}: not x, y, z or three numbers ax,ay,az", text);
        }
        if (k == 2) {
            return axis;
        }
        start = end + 1;
    }
    return fail(ErrorCode::kInvalidArgument, "--md-axis {}: not x, y, z or three numbers ax,ay,az",
                text);
}

struct MdStructure {
    StrainModel model;
    atomistic::StructureFactor s;  ///< of the (deformed) configuration, S2 as rendered
};

// --from-md: S0/S2 of the atoms by diffraction (atomistic/diffraction.hpp) up to the detector's
// largest Q, tabulated for the renderer. Positions are taken in A (LAMMPS metal or real units);
// every atom scatters alike (the composition's mean form factors, as for the built-in modes).
Result<MdStructure> md_structure(const SimulateOptions& o, double q_max_inv_angstrom) {
    if (o.md_dumps.empty() || o.md_dumps.size() > 2) {  // CLI11 checks this too
        return fail(ErrorCode::kInvalidArgument,
                    "--from-md takes REF.dump [DEF.dump], not {} files", o.md_dumps.size());
    }
    auto axis = parse_md_axis(o.md_axis);
    if (!axis) {
        return tl::unexpected(axis.error());
    }
    atomistic::DiffractionOptions options;
    options.loading_axis = *axis;
    options.q_max = q_max_inv_angstrom;
    options.q_bin_width = o.md_q_bin;
    options.max_grid = o.md_max_grid;
    std::vector<atomistic::Snapshot> last;
    std::vector<atomistic::StructureFactor> factors;
    std::vector<std::size_t> averaged;  // snapshots per dump
    for (const std::string& path : o.md_dumps) {
        auto snapshots = atomistic::read_lammps_dump(path);
        if (!snapshots) {
            return tl::unexpected(snapshots.error().with_context("--from-md"));
        }
        if (snapshots->empty()) {
            return fail(ErrorCode::kInvalidArgument, "--from-md {}: no snapshot", path);
        }
        const std::size_t first = o.md_all_snapshots ? 0 : snapshots->size() - 1;
        std::optional<atomistic::StructureFactor> mean;
        for (std::size_t i = first; i < snapshots->size(); ++i) {
            const atomistic::Snapshot& snapshot = (*snapshots)[i];
            auto s = atomistic::structure_factor(snapshot.box, snapshot.position, options);
            if (!s) {
                return tl::unexpected(s.error().with_context(
                    fmt::format("--from-md {} (timestep {})", path, snapshot.timestep)));
            }
            spdlog::info("diffraction from atoms file={} timestep={} atoms={} q_max={:.3g}", path,
                         snapshot.timestep, snapshot.size(), q_max_inv_angstrom);
            if (!mean) {
                mean = std::move(*s);
                continue;
            }
            // Sums here, means below; all snapshots are binned on the same |Q| edges.
            for (std::size_t k = 0; k < mean->s0.size(); ++k) {
                for (auto [sum, add] :
                     {std::pair{&mean->s0, &s->s0}, std::pair{&mean->s2, &s->s2}}) {
                    sum->q_inv_angstrom[k] += add->q_inv_angstrom[k];
                    sum->value[k] += add->value[k];
                    sum->variance[k] += add->variance[k];
                }
                mean->count[k] += s->count[k];
            }
            mean->number_density += s->number_density;
        }
        const auto n = static_cast<double>(snapshots->size() - first);
        for (std::size_t k = 0; k < mean->s0.size(); ++k) {
            for (physics::QCurve* c : {&mean->s0, &mean->s2}) {
                c->q_inv_angstrom[k] /= n;
                c->value[k] /= n;
                c->variance[k] /= n * n;  // of the mean of independent snapshots
            }
        }
        mean->number_density /= n;
        averaged.push_back(snapshots->size() - first);
        last.push_back(std::move(snapshots->back()));
        factors.push_back(std::move(*mean));
    }
    const bool change = factors.size() == 2;
    if (change && last[0].size() != last[1].size()) {
        return fail(ErrorCode::kInvalidArgument,
                    "--from-md: the reference has {} atoms, the deformed configuration {}",
                    last[0].size(), last[1].size());
    }
    atomistic::StructureFactor s = factors.back();
    if (change) {
        // Bin by bin (both binned on the same |Q| edges): the deformed S2 less the reference's.
        for (std::size_t k = 0; k < s.s2.size(); ++k) {
            s.s2.value[k] -= factors[0].s2.value[k];
            s.s2.variance[k] += factors[0].s2.variance[k];
        }
    }
    sim::HarmonicSamples samples{s.s0.q_inv_angstrom, s.s0.value, s.s2.value};
    auto structure = sim::tabulated_structure(samples, q_max_inv_angstrom);
    if (!structure) {
        return tl::unexpected(structure.error().with_context("--from-md"));
    }
    const atomistic::Box& box = last.back().box;
    const auto& h = box.edges();
    nlohmann::json parameters = {
        {"dumps", o.md_dumps},
        {"timesteps", nlohmann::json::array()},  // of the last snapshot of each dump
        {"atoms", last.back().size()},
        {"number_density_per_cubic_angstrom", s.number_density},
        {"box_edges_angstrom", {{h[0], h[3], h[6]}, {h[1], h[4], h[7]}, {h[2], h[5], h[8]}}},
        {"loading_axis", *axis},
        {"q_bin_inv_angstrom", o.md_q_bin},
        {"q_max_inv_angstrom", q_max_inv_angstrom},
        {"method", fmt::format("FFT lattice sums, B-spline order {}, oversampling {}, grid {}",
                               options.spline_order, options.oversampling, options.max_grid)},
        {"s2", change ? "deformed minus reference (last snapshots)" : "of the last snapshot"},
    };
    for (const auto& snapshot : last) {
        parameters["timesteps"].push_back(snapshot.timestep);
    }
    parameters["snapshots_averaged"] = averaged;
    StrainModel model{
        std::move(*structure), 0.0, std::move(parameters),
        fmt::format("diffraction from {} atoms of {}{}", last.back().size(), o.md_dumps.back(),
                    change ? fmt::format(" (S2 less that of {})", o.md_dumps[0]) : std::string())};
    return MdStructure{std::move(model), std::move(s)};
}

namespace pb = ::anisoflow::stream::v1;

// `--stream`: the run as an anisoflow stream on a PUSH socket (docs/protocol.md): RunStart, the
// frames at --fps, RunEnd. A full peer holds the simulator back; nothing is dropped.
class StreamSender {
  public:
    static Result<StreamSender> open(const SimulateOptions& o, const pb::RunStart& start) {
        std::string address = o.stream_address;
        if (!address.empty() && address.front() != '@' && address.front() != '>') {
            address.insert(0, ">");
        }
        StreamSender sender;
        auto security = load_curve(o.stream_curve);
        if (!security) {
            return tl::unexpected(security.error());
        }
        sender.context_ = std::make_unique<zmq::context_t>();
        sender.security_ = std::move(*security);
        // A bound CURVE socket admits the clients of --curve-public-keys-dir (ZAP handler).
        if (sender.security_.curve() && !address.empty() && address.front() == '@') {
            if (auto started = sender.security_.start(*sender.context_); !started) {
                return tl::unexpected(started.error().with_context("--stream"));
            }
        }
        transport::SocketOptions options;
        options.send_hwm = 4;
        // Frames still queued when the run ends are delivered before the process exits.
        options.linger = std::chrono::minutes(1);
        auto socket =
            sender.security_.open(*sender.context_, zmq::socket_type::push, address, options);
        if (!socket) {
            return tl::unexpected(socket.error().with_context("--stream"));
        }
        sender.socket_ = std::move(*socket);
        sender.run_id_ = start.run_id();
        if (o.stream_fps > 0.0) {
            sender.period_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::duration<double>(1.0 / o.stream_fps));
        }
        sender.next_frame_ = std::chrono::steady_clock::now();
        auto parts = transport::encode_control(start);
        if (!parts) {
            return tl::unexpected(parts.error());
        }
        if (auto sent = sender.send(std::move(*parts)); !sent) {
            return tl::unexpected(sent.error());
        }
        return sender;
    }

    Result<void> send_frame(const Frame& frame, pb::FrameKind kind, pb::Orientation orientation) {
        std::this_thread::sleep_until(next_frame_);
        next_frame_ = std::max(next_frame_ + period_, std::chrono::steady_clock::now());
        pb::FrameHeader header;
        header.set_run_id(run_id_);
        header.set_sequence(sequence_++);
        header.set_kind(kind);
        header.set_orientation(orientation);
        header.set_acquired_unix_ns(unix_now_ns());
        header.set_sent_unix_ns(unix_now_ns());
        header.set_exposure_s(frame.exposure_s.value_or(0.0));
        header.set_encoding(pb::ENCODING_RAW);
        header.set_dtype(transport::to_pixel_dtype(frame.pixel_type()));
        header.set_rows(static_cast<std::uint32_t>(frame.shape.rows));
        header.set_cols(static_cast<std::uint32_t>(frame.shape.cols));
        const auto bytes = std::visit(
            [](const auto& pixels) {
                return std::span<const std::byte>(
                    reinterpret_cast<const std::byte*>(pixels.data()),  // NOLINT
                    pixels.size() * sizeof(pixels[0]));
            },
            frame.pixels);
        auto parts = transport::encode_frame(header, transport::copy_payload(bytes));
        if (!parts) {
            return tl::unexpected(parts.error());
        }
        if (auto sent = send(std::move(*parts)); !sent) {
            return sent;
        }
        pb::FrameCounts& c = counts_;
        switch (kind) {
            case pb::FRAME_KIND_DARK:
                c.set_dark(c.dark() + 1);
                break;
            case pb::FRAME_KIND_FLAT:
                c.set_flat(c.flat() + 1);
                break;
            default:
                if (orientation == pb::ORIENTATION_N) {
                    c.set_data_n(c.data_n() + 1);
                } else {
                    c.set_data_p(c.data_p() + 1);
                }
                break;
        }
        return {};
    }

    Result<void> end() {
        pb::RunEnd end;
        end.set_run_id(run_id_);
        *end.mutable_frames_sent() = counts_;
        end.set_reason(pb::RUN_END_REASON_COMPLETED);
        end.set_ended_unix_ns(unix_now_ns());
        auto parts = transport::encode_control(end);
        if (!parts) {
            return tl::unexpected(parts.error());
        }
        return send(std::move(*parts));
    }

  private:
    StreamSender() = default;

    // Blocks while the receiver is full (backpressure), saying so every few seconds.
    Result<void> send(transport::Multipart parts) {
        constexpr auto kWaitReport = std::chrono::seconds(5);
        while (true) {
            auto sent = transport::send(socket_, parts, kWaitReport);
            if (!sent) {
                return tl::unexpected(sent.error().with_context("--stream"));
            }
            if (*sent) {
                return {};
            }
            spdlog::warn("stream receiver not accepting, waiting run={} sequence={}", run_id_,
                         sequence_);
        }
    }

    std::unique_ptr<zmq::context_t> context_;
    transport::SocketSecurity security_;  // after the context: its ZAP handler goes first
    zmq::socket_t socket_;
    std::string run_id_;
    std::uint64_t sequence_ = 0;
    std::chrono::nanoseconds period_{0};
    std::chrono::steady_clock::time_point next_frame_;
    pb::FrameCounts counts_;
};

// The RunStart of a streamed simulation: the geometry of the frames and the settings of the
// simulated sample, with the offline analysis' default grids (apps/anisoflow analyze), Q up to
// the largest full ring (beyond it partial rings spoil the harmonics).
pb::RunStart stream_run_start(const SimulateOptions& o, const geometry::PoniGeometry& poni,
                              double q_max_inv_angstrom) {
    pb::RunStart start;
    start.set_run_id(o.run_id.empty() ? fmt::format("sim-{}-{}", o.seed, unix_now_ns() / 1000000000)
                                      : o.run_id);
    start.set_started_unix_ns(unix_now_ns());
    start.set_source_version(ANISOFLOW_VERSION);
    pb::ExperimentConfig& c = *start.mutable_config();
    *c.mutable_geometry() = transport::to_message(poni);
    c.set_composition(o.composition);
    c.set_density_per_cubic_angstrom(o.density_per_cubic_angstrom);
    c.set_nu(o.nu);
    c.set_loading_axis_chi_deg(o.loading_axis_chi_deg);
    c.set_mode(pb::EXTRACTION_MODE_PN);
    c.set_q_min_inv_angstrom(0.5);
    c.set_q_max_inv_angstrom(q_max_inv_angstrom);
    c.set_n_q(1000);
    c.set_n_chi(72);
    c.set_r_max_angstrom(25.0);
    c.set_n_r(2000);
    c.set_r_fit_min_angstrom(2.3);
    c.set_r_fit_max_angstrom(20.0);
    c.set_normalisation(pb::NORMALISATION_HIGH_Q);
    c.set_polarization_factor(o.polarization_factor);
    // The simulated detector is a flat panel: its dark is an offset with read noise, not photons
    // (docs/reduction.md, "Noise models"). The reducers estimate the read noise from the darks,
    // as `anisoflow analyze --variance-model integrating` does; with fewer than two darks the
    // detector's own figure is sent.
    c.set_variance_model(pb::VARIANCE_MODEL_INTEGRATING);
    c.set_counts_per_photon(1.0);
    if (o.dark_frames < 2) {
        c.set_read_noise_counts(o.noiseless ? 0.0 : o.read_noise_counts);
    }
    pb::FrameCounts& expected = *c.mutable_frames_expected();
    expected.set_data_p(o.frames_per_orientation);
    expected.set_data_n(o.frames_per_orientation);
    expected.set_dark(o.dark_frames);
    expected.set_flat(1);
    return start;
}

}  // namespace

CLI::App* add_simulate_command(CLI::App& app, SimulateOptions& o) {
    CLI::App* cmd = app.add_subcommand(
        "simulate", "Simulate P/N frames of a strained glass, darks, a flat and the PONI");
    cmd->add_option(
        "--out-dir", o.out_dir,
        "directory for p.h5 n.h5 dark.h5 flat.h5 geometry.poni (needed unless --stream)");
    cmd->add_option("--stream", o.stream_address,
                    "also stream the run to ingest: PUSH to ADDR (>tcp://host:port connects, "
                    "@tcp://*:port binds): RunStart, darks, the flat, P and N frames, RunEnd");
    add_curve_options(*cmd, o.stream_curve);
    cmd->add_option("--fps", o.stream_fps, "--stream: frames per second (0 = no pacing)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--run-id", o.run_id, "--stream: run id (default sim-<seed>-<unix time>)");
    cmd->add_option("--poni", o.poni_path, "detector geometry (default: built-in, see --rows)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--rows", o.rows, "built-in detector rows")->capture_default_str();
    cmd->add_option("--cols", o.cols, "built-in detector columns")->capture_default_str();
    cmd->add_option("--distance", o.distance_m, "built-in detector distance, m")
        ->capture_default_str();
    cmd->add_option("--mode", o.mode,
                    "strain mode: affine (exact S(|F^T Q|)), radial (eps(r) steps from "
                    "eps (1 - drop) to eps at --radial-rc; first order), rotation (bonds turn, "
                    "no length change: g2 = beta (g0 - 1) T(r); first order) or none")
        ->capture_default_str();
    cmd->add_option("--eps", o.eps,
                    "strain, > 0 for compression along the axis (radial: the long-range eps_aff; "
                    "rotation: sets beta, see --rotation-amplitude)")
        ->capture_default_str();
    cmd->add_option("--radial-rc", o.radial_step_centre_angstrom,
                    "radial: centre r_c of the strain step, A")
        ->capture_default_str();
    cmd->add_option("--radial-width", o.radial_step_width_angstrom,
                    "radial: width of the logistic strain step, A")
        ->capture_default_str();
    cmd->add_option("--radial-drop", o.radial_inner_drop,
                    "radial: fraction of eps missing below the step (eps(0) = eps (1 - drop))")
        ->capture_default_str();
    cmd->add_option("--rotation-amplitude", o.rotation_amplitude,
                    "rotation: peak |S2| over the affine first-order peak |S2| at the same --eps")
        ->capture_default_str();
    cmd->add_option("--nu", o.nu, "Poisson ratio")->capture_default_str();
    cmd->add_option("--loading-axis-chi", o.loading_axis_chi_deg,
                    "pyFAI chi of the loading axis in orientation P, deg")
        ->capture_default_str();
    cmd->add_option("--frames", o.frames_per_orientation, "frames per orientation")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->add_option("--distinct", o.distinct_frames,
                    "render only the first N frames per orientation and send them again in turn "
                    "(long or fast streams; 0 = render every frame)")
        ->capture_default_str();
    cmd->add_flag("--interleave", o.interleave,
                  "send P and N data frames alternately (P0, N0, P1, ...), not every P frame "
                  "first");
    cmd->add_option("--darks", o.dark_frames, "dark frames")->capture_default_str();
    cmd->add_option("--counts-at-peak", o.counts_at_peak, "counts per pixel at the first peak")
        ->capture_default_str();
    cmd->add_option("--composition", o.composition, "chemical formula")->capture_default_str();
    cmd->add_option("--density", o.density_per_cubic_angstrom, "number density rho0, atoms/A^3")
        ->capture_default_str();
    cmd->add_option("--packing", o.packing_fraction, "hard-sphere packing fraction")
        ->capture_default_str();
    cmd->add_option("--debye-waller", o.debye_waller_angstrom, "Debye-Waller-like width, A")
        ->capture_default_str();
    cmd->add_option("--dark-level", o.dark_level_counts, "dark level, counts")
        ->capture_default_str();
    cmd->add_option("--read-noise", o.read_noise_counts, "read noise, counts rms")
        ->capture_default_str();
    cmd->add_option("--polarization", o.polarization_factor, "beam polarization factor")
        ->capture_default_str();
    cmd->add_option("--flat-variation", o.flat_variation, "amplitude of the flat-field pattern")
        ->capture_default_str();
    cmd->add_flag("--noiseless", o.noiseless, "no Poisson or read noise (for validation)");
    cmd->add_flag("--float-frames", o.float_frames,
                  "with --noiseless: write P, N and dark frames as float32 expected counts, not "
                  "rounded or clipped at 0 (a first-order model's S < 0 kept; analyze them with "
                  "--keep-negative)");
    cmd->add_option("--seed", o.seed, "random seed (frames are reproducible)")
        ->capture_default_str();
    cmd->add_option("--from-md", o.md_dumps,
                    "REF.dump [DEF.dump]: frames of atoms (LAMMPS text dumps, A; last snapshot of "
                    "each) instead of --mode: S0 and S2 by diffraction from atoms; with two "
                    "dumps S2 is DEF's less REF's")
        ->expected(1, 2)
        ->check(CLI::ExistingFile);
    cmd->add_flag("--md-all-snapshots", o.md_all_snapshots,
                  "--from-md: average S0 and S2 over every snapshot of each dump (less speckle "
                  "than the last one alone)");
    cmd->add_option("--md-q-max", o.md_q_max,
                    "--from-md: S0 and S2 from the atoms up to this Q, S = 1 beyond (where S - 1 "
                    "has died out, one configuration's speckle is all that is left), 1/A; "
                    "default: the detector's largest Q")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--md-axis", o.md_axis,
                    "--from-md: the loading axis in the box: x, y, z or ax,ay,az")
        ->capture_default_str();
    cmd->add_option("--md-q-bin", o.md_q_bin, "--from-md: |Q| bin width of S0 and S2, 1/A")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->add_option("--md-grid", o.md_max_grid,
                    "--from-md: FFT grid points per axis (memory: grid^3 doubles; beyond its "
                    "reach, folded grids sample every 2nd, 4th, ... lattice point)")
        ->capture_default_str();
    return cmd;
}

int run_simulate(const SimulateOptions& o) {
    // Checked here rather than by CLI11, so that a bad mode is a named error with exit status 1
    // like every other bad value.
    if (o.md_dumps.empty() && o.mode != "affine" && o.mode != "radial" && o.mode != "rotation" &&
        o.mode != "none") {
        return report(
            Error{ErrorCode::kInvalidArgument,
                  fmt::format("--mode {} is not one of affine, radial, rotation, none", o.mode)});
    }
    if (!(o.nu > -1.0 && o.nu < 0.5)) {
        return report(
            Error{ErrorCode::kInvalidArgument, fmt::format("--nu {} is outside (-1, 0.5)", o.nu)});
    }
    if (o.float_frames && !o.noiseless) {
        return report(Error{ErrorCode::kInvalidArgument,
                            "--float-frames needs --noiseless (negative expected counts have no "
                            "Poisson law)"});
    }
    if (o.out_dir.empty() && o.stream_address.empty()) {
        return report(Error{ErrorCode::kInvalidArgument, "give --out-dir, --stream or both"});
    }
    const bool write_files = !o.out_dir.empty();
    const std::filesystem::path dir(o.out_dir);
    if (write_files) {
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        if (ec) {
            return report(
                Error{ErrorCode::kIo, fmt::format("--out-dir {}: {}", o.out_dir, ec.message())});
        }
    }
    geometry::PoniGeometry poni = builtin_geometry(o);
    if (!o.poni_path.empty()) {
        auto parsed = io::read_poni_file(o.poni_path);
        if (!parsed) {
            return report(parsed.error());
        }
        poni = parsed->geometry;
    }
    const geometry::DetectorGeometry geometry(poni);
    auto factors = physics::ScatteringFactors::from_formula(o.composition);
    if (!factors) {
        return report(factors.error().with_context("--composition"));
    }
    auto structure = sim::HardSphereStructure::create(
        {o.density_per_cubic_angstrom, o.packing_fraction, o.debye_waller_angstrom});
    if (!structure) {
        return report(structure.error());
    }

    // Scattering factors on a fine Q grid covering the detector.
    const auto range = geometry.pixel_q_range();
    sim::AtomicTermsTable atomic;
    for (double q = 0.0; q <= range.max_inv_angstrom + 0.1; q += 0.01) {
        const auto averages = factors->at(q);
        atomic.q_inv_angstrom.push_back(q);
        atomic.mean_f_squared.push_back(averages.mean_f_squared);
        atomic.mean_squared_f.push_back(averages.mean_squared_f);
        atomic.compton.push_back(averages.compton);
    }
    // S2 tables reach past the detector's largest Q.
    const bool from_md = !o.md_dumps.empty();
    auto model = from_md ? [&]() -> Result<StrainModel> {
        // Past the first-peak search below as well, whatever the detector reaches.
        const double q_max = o.md_q_max > 0.0 ? o.md_q_max : range.max_inv_angstrom + 0.1;
        auto md = md_structure(o, std::max(q_max, kPeakSearchMaxInvAngstrom + 0.1));
        if (!md) {
            return tl::unexpected(md.error());
        }
        return std::move(md->model);
    }()
        : strain_model(o, *structure, range.max_inv_angstrom + 0.1);
    if (!model) {
        return report(model.error());
    }
    // S0 of what is rendered: the hard-sphere S, or the atoms' S at the magic angle (P2 = 0).
    const double magic_cos_psi = 1.0 / std::sqrt(3.0);
    const auto s0_of = [&](double q) {
        return from_md ? model->structure.s(q, magic_cos_psi) : structure->s(q);
    };
    // Scale K so that the first peak of S holds --counts-at-peak counts per pixel.
    double q_peak = 0.0;
    for (double q = 0.5; q < kPeakSearchMaxInvAngstrom; q += 0.001) {
        if (s0_of(q) > s0_of(q_peak)) {
            q_peak = q;
        }
    }
    const auto at_peak = factors->at(q_peak);
    const double per_atom_at_peak =
        at_peak.mean_f_squared * (s0_of(q_peak) - 1.0) + at_peak.mean_squared_f + at_peak.compton;

    const std::vector<float> flat = synthetic_flat(geometry.shape(), o.flat_variation);
    auto renderer = sim::FrameRenderer::create(geometry, atomic, flat);
    if (!renderer) {
        return report(renderer.error());
    }
    sim::RenderSettings settings;
    settings.counts_scale = o.counts_at_peak / per_atom_at_peak;
    settings.loading_axis_chi_deg = o.loading_axis_chi_deg;
    settings.polarization_factor = o.polarization_factor;
    settings.dark_counts = o.dark_level_counts;
    settings.read_noise_counts = o.noiseless ? 0.0 : o.read_noise_counts;
    settings.poisson_noise = !o.noiseless;
    settings.pixel_output =
        o.float_frames ? sim::PixelOutput::kFloat32Expected : sim::PixelOutput::kUint16Counts;
    const PixelType frame_type = o.float_frames ? PixelType::kFloat32 : PixelType::kUint16;

    // Darks first: a stream sends them (and the flat) before the data frames they correct.
    std::vector<Frame> darks;
    for (std::size_t f = 0; f < o.dark_frames; ++f) {
        settings.seed = sim::frame_seed(o.seed, sim::FrameSeries::kDark, f);
        darks.push_back(renderer->render_dark(settings));
    }
    const Frame flat_frame = Frame::from_vector(geometry.shape(), flat);
    std::optional<StreamSender> stream;
    if (!o.stream_address.empty()) {
        auto opened =
            StreamSender::open(o, stream_run_start(o, poni, geometry.full_ring_q_inv_angstrom()));
        if (!opened) {
            return report(opened.error());
        }
        stream.emplace(std::move(*opened));
        for (const Frame& dark : darks) {
            if (auto sent =
                    stream->send_frame(dark, pb::FRAME_KIND_DARK, pb::ORIENTATION_UNSPECIFIED);
                !sent) {
                return report(sent.error());
            }
        }
        if (auto sent =
                stream->send_frame(flat_frame, pb::FRAME_KIND_FLAT, pb::ORIENTATION_UNSPECIFIED);
            !sent) {
            return report(sent.error());
        }
    }

    constexpr std::array kOrientations = {sim::Orientation::kP, sim::Orientation::kN};
    for (const auto orientation : kOrientations) {
        const bool is_p = orientation == sim::Orientation::kP;
        // A first-order model can ask for negative intensity (a strain step in the uniform
        // background of pairs gives a large S2 at low Q while S0 there is ~0.01): a detector
        // records 0, so the frames no longer hold the model. Say so rather than clip quietly;
        // --float-frames keeps the model as it is (docs/physics-simulator.md).
        settings.orientation = orientation;
        const std::vector<double> expected = renderer->expected_signal(model->structure, settings);
        const auto negative = std::count_if(expected.begin(), expected.end(),
                                            [](double counts) { return counts < 0.0; });
        if (negative > 0) {
            spdlog::warn(
                "model intensity below zero orientation={} pixels={}: the first-order "
                "strain model is not physical there (S(Q, psi) < 0); {}",
                is_p ? "P" : "N", negative,
                o.float_frames ? "float32 frames keep it below the dark (analyze with "
                                 "--keep-negative)"
                               : "frames record 0 (--noiseless --float-frames keeps it)");
        }
    }

    // Index i: kOrientations[i]. frames: what the files get; distinct: with --distinct K, the
    // first K frames, sent again in turn after them (streams longer or faster than the renderer
    // keeps up with: a 1024 x 1024 frame takes ~0.3 s).
    std::array<std::vector<Frame>, 2> frames;
    std::array<std::vector<Frame>, 2> distinct;
    auto data_frame = [&](std::size_t i, std::size_t f) -> Result<void> {
        const bool is_p = kOrientations[i] == sim::Orientation::kP;
        const bool again = o.distinct_frames > 0 && f >= o.distinct_frames;
        Frame rendered;
        if (!again) {
            settings.orientation = kOrientations[i];
            settings.seed =
                sim::frame_seed(o.seed, is_p ? sim::FrameSeries::kP : sim::FrameSeries::kN, f);
            auto frame = renderer->render(model->structure, settings);
            if (!frame) {
                return tl::unexpected(frame.error());
            }
            rendered = std::move(*frame);
        }
        const Frame& frame = again ? distinct[i][f % o.distinct_frames] : rendered;
        if (stream) {
            if (auto sent = stream->send_frame(frame, pb::FRAME_KIND_DATA,
                                               is_p ? pb::ORIENTATION_P : pb::ORIENTATION_N);
                !sent) {
                return sent;
            }
        }
        if (write_files) {
            frames[i].push_back(frame);
        }
        if (!again && o.distinct_frames > 0) {
            distinct[i].push_back(std::move(rendered));
        }
        spdlog::info("simulated orientation={} frame={}/{}", is_p ? "P" : "N", f + 1,
                     o.frames_per_orientation);
        return {};
    };
    auto write_orientation = [&](std::size_t i) -> Result<void> {
        if (!write_files) {
            return {};
        }
        const bool is_p = kOrientations[i] == sim::Orientation::kP;
        auto written = write_stack(dir / (is_p ? "p.h5" : "n.h5"), frames[i], frame_type);
        frames[i].clear();
        return written;
    };
    if (o.interleave) {
        // P0, N0, P1, N1, ...: both orientations from the start (bench/soak.sh).
        for (std::size_t f = 0; f < o.frames_per_orientation; ++f) {
            for (std::size_t i = 0; i < kOrientations.size(); ++i) {
                if (auto sent = data_frame(i, f); !sent) {
                    return report(sent.error());
                }
            }
        }
    }
    for (std::size_t i = 0; i < kOrientations.size(); ++i) {
        for (std::size_t f = 0; !o.interleave && f < o.frames_per_orientation; ++f) {
            if (auto sent = data_frame(i, f); !sent) {
                return report(sent.error());
            }
        }
        if (auto written = write_orientation(i); !written) {
            return report(written.error());
        }
    }
    if (stream) {
        if (auto ended = stream->end(); !ended) {
            return report(ended.error());
        }
    }
    if (!write_files) {
        std::printf(
            "anisoflow simulate: streamed %zu dark, 1 flat and %zu P + %zu N frames of "
            "%zux%zu to %s\n",
            o.dark_frames, o.frames_per_orientation, o.frames_per_orientation,
            geometry.shape().rows, geometry.shape().cols, o.stream_address.c_str());
        return 0;
    }
    if (!darks.empty()) {
        if (auto written = write_stack(dir / "dark.h5", darks, frame_type); !written) {
            return report(written.error());
        }
    }
    if (auto written = write_stack(dir / "flat.h5", {flat_frame}, PixelType::kFloat32); !written) {
        return report(written.error());
    }
    {
        std::ofstream poni_file(dir / "geometry.poni");
        poni_file << "# anisoflow simulate: detector geometry of the simulated frames\n"
                  << geometry::format_poni(poni);
        if (!poni_file) {
            return report(
                Error{ErrorCode::kIo, (dir / "geometry.poni").string() + ": cannot write"});
        }
    }
    // The affine (long-range) part the analysis' alpha measures (SPEC 7); 0 without bond-length
    // change (rotation, none).
    const double alpha = 2.0 * (1.0 + o.nu) * model->eps_aff / (3.0 * std::sqrt(5.0));
    nlohmann::json record = {
        {"mode", o.mode},
        {"eps", o.eps},
        {"eps_aff", model->eps_aff},
        {"nu", o.nu},
        {"alpha_expected", alpha},
        {"harmonic_normalisation", "paper (SPEC 4): S(Q, psi) = S0 + sqrt5 S2 P2(cos psi)"},
        {"loading_axis_chi_deg", o.loading_axis_chi_deg},
        {"composition", o.composition},
        {"density_per_cubic_angstrom", o.density_per_cubic_angstrom},
        {"packing_fraction", o.packing_fraction},
        {"debye_waller_angstrom", o.debye_waller_angstrom},
        {"hard_sphere_diameter_angstrom", structure->diameter_angstrom()},
        {"first_peak_q_inv_angstrom", q_peak},
        {"counts_scale", settings.counts_scale},
        {"frames_per_orientation", o.frames_per_orientation},
        {"dark_frames", o.dark_frames},
        {"dark_level_counts", o.dark_level_counts},
        {"read_noise_counts", settings.read_noise_counts},
        {"polarization_factor", o.polarization_factor},
        {"noiseless", o.noiseless},
        {"pixel_type", o.float_frames ? "float32 (expected counts, unclipped)" : "uint16"},
        {"seed", o.seed},
    };
    if (from_md) {
        // No strain is known of atoms: the analysis' alpha is what they say. The hard-sphere
        // parameters did not enter the frames.
        record["mode"] = "md";
        record["eps"] = nullptr;
        record["eps_aff"] = nullptr;
        record["alpha_expected"] = nullptr;
        for (const char* key : {"packing_fraction", "debye_waller_angstrom",
                                "hard_sphere_diameter_angstrom", "density_per_cubic_angstrom"}) {
            record.erase(key);
        }
        record["md"] = model->parameters;
    } else if (!model->parameters.empty()) {
        record[o.mode] = model->parameters;
    }
    std::ofstream json(dir / "simulation.json");
    json << record.dump(2) << "\n";
    // Atoms carry their own density, which `analyze --density` needs; a mode its alpha.
    const std::string model_text =
        from_md ? fmt::format("{}, rho0={:.6g} /A^3", model->summary,
                              model->parameters["number_density_per_cubic_angstrom"].get<double>())
                : fmt::format("{}, nu={} (alpha={:.6g})", model->summary, o.nu, alpha);
    std::printf(
        "anisoflow simulate: %s, %zu frames per "
        "orientation of %zux%zu, first peak at Q = %.3f 1/A with ~%.0f counts\n"
        "  wrote %s/{p.h5, n.h5, dark.h5, flat.h5, geometry.poni, simulation.json}\n",
        model_text.c_str(), o.frames_per_orientation, geometry.shape().rows, geometry.shape().cols,
        q_peak, o.counts_at_peak, o.out_dir.c_str());
    return 0;
}

}  // namespace anisoflow::app
