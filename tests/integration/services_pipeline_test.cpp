// The streaming chain end to end in one process: two reduce workers, analyze and archive run
// their real service loops on threads, over ipc:// sockets in a scratch directory; the test is
// ingest (the real transport::Dispatcher plus a control PUB) and sends a simulated P/N run. It
// checks frames in = frames out, that the final result equals the offline analysis of the same
// frames by the library calls `anisoflow analyze` makes, and that the run file holds every cake
// and the result series and was closed as completed.

#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>
#include <zmq.hpp>

#include "anisoflow/codec/bitshuffle.hpp"
#include "anisoflow/codec/lz4.hpp"
#include "anisoflow/geometry/detector_geometry.hpp"
#include "anisoflow/metrics/metrics.hpp"
#include "anisoflow/physics/anisotropy_analysis.hpp"
#include "anisoflow/physics/scattering_factors.hpp"
#include "anisoflow/reduce/cake_integrator.hpp"
#include "anisoflow/reduce/corrections.hpp"
#include "anisoflow/runtime/config_loader.hpp"
#include "anisoflow/runtime/service_main.hpp"
#include "anisoflow/runtime/service_thread.hpp"
#include "anisoflow/sim/frame_renderer.hpp"
#include "anisoflow/testing/hdf5_values.hpp"
#include "anisoflow/testing/test_paths.hpp"
#include "anisoflow/transport/dispatch.hpp"
#include "anisoflow/transport/experiment.hpp"
#include "anisoflow/transport/payload.hpp"
#include "anisoflow/transport/socket.hpp"

#include "analyze_service.hpp"
#include "archive_service.hpp"
#include "reduce_service.hpp"

namespace anisoflow {
namespace {

using anisoflow::testing::read_doubles;
using anisoflow::testing::read_fixed_string;
using anisoflow::testing::read_u64;

namespace pb = ::anisoflow::stream::v1;
namespace cfg = ::anisoflow::config::v1;
using std::chrono::milliseconds;

// Two workers merge cakes in arrival order, the offline path in sequence order: the sums differ
// by rounding only (a few ulp per cell), which the analysis carries through to ~1e-12 relative.
constexpr double kSummationOrderRelativeTolerance = 1e-9;
// How long the test waits for the chain before it fails (a few small frames take < 1 s).
constexpr auto kChainTimeout = std::chrono::seconds(60);

constexpr const char* kComposition = "Zr52.5Cu17.9Ni14.6Al10Ti5";
constexpr double kDensity = 0.0553;
constexpr double kNu = 0.37;
constexpr double kEps = 0.01;

// A service loop on a thread of the test (runtime::ServiceThread); null, with a test failure,
// when it could not start.
std::unique_ptr<runtime::ServiceThread> start_service(std::string name,
                                                      runtime::ServiceThread::Loop loop) {
    auto started = runtime::ServiceThread::start(std::move(name), std::move(loop));
    EXPECT_TRUE(started.has_value()) << started.error().message;
    return started ? std::move(*started) : nullptr;
}

// The value of one sample line of the Prometheus text, e.g. `name{reason="x"} 3`.
double metric_value(const std::string& text, const std::string& series) {
    const auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) {
        return std::nan("");
    }
    return std::stod(text.substr(at + series.size() + 2));
}

void set_socket(cfg::Socket* socket, const std::string& address) { socket->set_address(address); }

pb::RunStart make_run_start(const geometry::PoniGeometry& poni) {
    pb::RunStart start;
    start.set_run_id("2025-01-31T12:00:00Z/../pipeline");  // sanitised by archive
    start.set_source_version("test");
    pb::ExperimentConfig& c = *start.mutable_config();
    *c.mutable_geometry() = transport::to_message(poni);
    c.set_composition(kComposition);
    c.set_density_per_cubic_angstrom(kDensity);
    c.set_nu(kNu);
    c.set_loading_axis_chi_deg(0.0);
    c.set_mode(pb::EXTRACTION_MODE_PN);
    c.set_q_min_inv_angstrom(1.0);
    c.set_q_max_inv_angstrom(14.0);
    c.set_n_q(130);
    c.set_n_chi(36);
    c.set_r_max_angstrom(20.0);
    c.set_n_r(400);
    c.set_r_fit_min_angstrom(2.3);
    c.set_r_fit_max_angstrom(15.0);
    c.set_normalisation(pb::NORMALISATION_HIGH_Q);
    c.set_r_poly_angstrom(0.9);
    c.set_polarization_factor(0.99);
    return start;
}

geometry::PoniGeometry small_detector() {
    geometry::PoniGeometry poni;
    poni.detector = geometry::DetectorModel{"Detector", 400e-6, 400e-6, FrameShape{128, 128}};
    poni.distance_m = 0.08;
    poni.poni1_m = 64 * 400e-6;
    poni.poni2_m = 64 * 400e-6;
    poni.wavelength_m = 0.123984e-10;  // 100 keV
    return poni;
}

struct SimulatedRun {
    std::vector<Frame> darks;
    std::vector<Frame> p;
    std::vector<Frame> n;
};

SimulatedRun simulate(const geometry::DetectorGeometry& geometry) {
    auto factors = physics::ScatteringFactors::from_formula(kComposition);
    EXPECT_TRUE(factors.has_value());
    sim::AtomicTermsTable atomic;
    for (double q = 0.0; q <= geometry.pixel_q_range().max_inv_angstrom + 0.1; q += 0.01) {
        const auto averages = factors->at(q);
        atomic.q_inv_angstrom.push_back(q);
        atomic.mean_f_squared.push_back(averages.mean_f_squared);
        atomic.mean_squared_f.push_back(averages.mean_squared_f);
        atomic.compton.push_back(averages.compton);
    }
    auto structure = sim::HardSphereStructure::create({kDensity, 0.55, 0.15});
    auto renderer = sim::FrameRenderer::create(geometry, atomic);
    EXPECT_TRUE(structure && renderer);
    sim::RenderSettings settings;
    settings.counts_scale = 20.0;  // a few thousand counts per pixel at the first peak
    settings.strain = sim::UniaxialStrain{kEps, kNu};
    settings.read_noise_counts = 2.0;
    SimulatedRun run;
    for (std::uint64_t i = 0; i < 2; ++i) {
        settings.seed = sim::frame_seed(7, sim::FrameSeries::kDark, i);
        run.darks.push_back(renderer->render_dark(settings));
    }
    for (std::uint64_t i = 0; i < 3; ++i) {
        for (const auto orientation : {sim::Orientation::kP, sim::Orientation::kN}) {
            settings.orientation = orientation;
            settings.seed = sim::frame_seed(
                7,
                orientation == sim::Orientation::kP ? sim::FrameSeries::kP : sim::FrameSeries::kN,
                i);
            auto frame = renderer->render(*structure, settings);
            EXPECT_TRUE(frame.has_value());
            (orientation == sim::Orientation::kP ? run.p : run.n).push_back(std::move(*frame));
        }
    }
    return run;
}

// What `anisoflow analyze` computes from the same frames (apps/anisoflow/analyze_command.cpp).
physics::AnisotropyResult offline_analysis(const geometry::DetectorGeometry& geometry,
                                           const pb::RunStart& start, const SimulatedRun& run) {
    reduce::FrameAverager darks;
    for (const Frame& dark : run.darks) {
        EXPECT_TRUE(darks.add(dark.view()).has_value());
    }
    reduce::DetectorCorrections corrections;
    corrections.dark_counts = *darks.mean();
    corrections.dark_frame_count = darks.frame_count();
    corrections.saturation_counts = 65535.0;  // uint16 frames
    corrections.polarization_factor = start.config().polarization_factor();
    reduce::CakeAxes axes;
    axes.n_q = start.config().n_q();
    axes.n_chi = start.config().n_chi();
    axes.q_min_inv_angstrom = start.config().q_min_inv_angstrom();
    axes.q_max_inv_angstrom = start.config().q_max_inv_angstrom();
    auto integrator = reduce::CakeIntegrator::create(
        geometry, {axes, reduce::PixelSplitting::kNone, 2}, std::move(corrections));
    EXPECT_TRUE(integrator.has_value());
    reduce::CakeAccumulator p;
    reduce::CakeAccumulator n;
    for (const Frame& frame : run.p) {
        EXPECT_TRUE(integrator->accumulate(frame.view(), p).has_value());
    }
    for (const Frame& frame : run.n) {
        EXPECT_TRUE(integrator->accumulate(frame.view(), n).has_value());
    }
    auto settings = analyzer::analysis_settings(start.config());
    EXPECT_TRUE(settings.has_value());
    auto analysis = physics::AnisotropyAnalyzer::create(*settings);
    EXPECT_TRUE(analysis.has_value());
    const reduce::Cake cake_n = n.finish();
    auto result = analysis->analyse(p.finish(), &cake_n);
    EXPECT_TRUE(result.has_value()) << result.error().message;
    return std::move(*result);
}

// The frame as ingest would send it, in `encoding`.
std::pair<pb::FrameHeader, zmq::message_t> encode_frame(const Frame& frame, const std::string& run,
                                                        std::uint64_t sequence, pb::FrameKind kind,
                                                        pb::Orientation orientation,
                                                        pb::Encoding encoding) {
    const auto& pixels = std::get<std::vector<std::uint16_t>>(frame.pixels);
    const auto bytes = std::as_bytes(std::span(pixels));
    pb::FrameHeader header;
    header.set_run_id(run);
    header.set_sequence(sequence);
    header.set_kind(kind);
    header.set_orientation(orientation);
    header.set_encoding(encoding);
    header.set_dtype(pb::PIXEL_DTYPE_UINT16);
    header.set_rows(static_cast<std::uint32_t>(frame.shape.rows));
    header.set_cols(static_cast<std::uint32_t>(frame.shape.cols));
    header.set_uncompressed_size_bytes(bytes.size());
    std::vector<std::byte> payload(bytes.begin(), bytes.end());
    if (encoding == pb::ENCODING_LZ4) {
        payload = *codec::lz4_compress_block(bytes);
    } else if (encoding == pb::ENCODING_BSLZ4) {
        payload = *codec::bslz4_compress(bytes, sizeof(std::uint16_t));
    }
    return {header, transport::make_payload(std::move(payload))};
}

void expect_close(double streamed, double offline, const char* what) {
    EXPECT_NEAR(streamed, offline,
                kSummationOrderRelativeTolerance * std::max(1.0, std::abs(offline)))
        << what;
}

TEST(ServicesPipeline, TwoReducersAnalyzeAndArchiveEveryFrameOfASimulatedRunExactlyOnce) {
    const std::filesystem::path dir = testing::scratch_dir();
    // ipc paths are limited to ~100 characters: keep the sockets in a short directory.
    const std::filesystem::path sockets =
        std::filesystem::temp_directory_path() / ("afs-" + std::to_string(::getpid()));
    std::filesystem::create_directories(sockets);
    const auto ipc = [&](const char* name) { return "ipc://" + (sockets / name).string(); };

    cfg::AnalyzeConfig analyze;
    ASSERT_TRUE(runtime::merge_defaults(analyze).has_value());
    set_socket(analyze.mutable_endpoints()->mutable_reduced_in(), "@" + ipc("reduced"));
    set_socket(analyze.mutable_endpoints()->mutable_control_in(), ">" + ipc("control"));
    set_socket(analyze.mutable_endpoints()->mutable_results_out(), "@" + ipc("results"));
    set_socket(analyze.mutable_endpoints()->mutable_archive_out(), "@" + ipc("archive"));
    analyze.set_recompute_interval_ms(100);
    analyze.set_drain_timeout_ms(20000);
    cfg::ArchiveConfig archive;
    ASSERT_TRUE(runtime::merge_defaults(archive).has_value());
    set_socket(archive.mutable_endpoints()->mutable_archive_in(), ">" + ipc("archive"));
    archive.set_archive_dir((dir / "runs").string());
    std::vector<cfg::ReduceConfig> reducers(2);
    for (std::size_t i = 0; i < reducers.size(); ++i) {
        ASSERT_TRUE(runtime::merge_defaults(reducers[i]).has_value());
        reducers[i].set_instance("reduce-" + std::to_string(i));
        set_socket(reducers[i].mutable_endpoints()->mutable_frames_in(), ">" + ipc("frames"));
        set_socket(reducers[i].mutable_endpoints()->mutable_control_in(), ">" + ipc("control"));
        set_socket(reducers[i].mutable_endpoints()->mutable_reduced_out(), ">" + ipc("reduced"));
        reducers[i].set_threads(2);
        reducers[i].set_queue_capacity_frames(2);
        reducers[i].set_heartbeat_interval_ms(200);
    }

    // Ingest's side first: the workers connect to it.
    zmq::context_t context;
    auto dispatcher = transport::Dispatcher::open(context, "@" + ipc("frames"));
    ASSERT_TRUE(dispatcher.has_value()) << dispatcher.error().message;
    auto control = transport::open_socket(context, zmq::socket_type::pub, "@" + ipc("control"));
    ASSERT_TRUE(control.has_value());
    transport::SocketOptions subscribe;
    auto results =
        transport::open_socket(context, zmq::socket_type::sub, ">" + ipc("results"), subscribe);
    ASSERT_TRUE(results.has_value());

    auto analyze_service = start_service(
        "analyze", [&](runtime::ServiceContext& c) { return analyzer::run(analyze, c); });
    auto archive_service = start_service(
        "archive", [&](runtime::ServiceContext& c) { return archiver::run(archive, c); });
    ASSERT_TRUE(analyze_service && archive_service);
    std::vector<std::unique_ptr<runtime::ServiceThread>> workers;
    workers.reserve(reducers.size());
    for (const cfg::ReduceConfig& worker_config : reducers) {
        workers.push_back(start_service(
            "reduce", [&](runtime::ServiceContext& c) { return reducer::run(worker_config, c); }));
        ASSERT_TRUE(workers.back());
    }

    const geometry::PoniGeometry poni = small_detector();
    const geometry::DetectorGeometry geometry(poni);
    const SimulatedRun run = simulate(geometry);
    const pb::RunStart start = make_run_start(poni);
    const std::string& run_id = start.run_id();

    const auto deadline = std::chrono::steady_clock::now() + kChainTimeout;
    const auto publish_start = [&] {
        auto parts = transport::encode_control(start);
        ASSERT_TRUE(parts.has_value());
        ASSERT_TRUE(transport::try_send(*control, *parts).has_value());
    };
    while (dispatcher->workers_alive() < 2 && std::chrono::steady_clock::now() < deadline) {
        ASSERT_TRUE(dispatcher->poll(milliseconds(50)).has_value());
        publish_start();
    }
    ASSERT_EQ(dispatcher->workers_alive(), 2U);
    ASSERT_TRUE(dispatcher->start_run(start).has_value());

    std::uint64_t sequence = 0;
    for (const Frame& dark : run.darks) {
        auto [header, payload] = encode_frame(dark, run_id, sequence++, pb::FRAME_KIND_DARK,
                                              pb::ORIENTATION_UNSPECIFIED, pb::ENCODING_RAW);
        ASSERT_TRUE(dispatcher->dispatch(header, std::move(payload)).has_value());
    }
    const pb::Encoding encodings[] = {pb::ENCODING_RAW, pb::ENCODING_LZ4, pb::ENCODING_BSLZ4};
    for (std::size_t i = 0; i < run.p.size(); ++i) {
        for (const auto& [frames, orientation] :
             {std::pair{&run.p, pb::ORIENTATION_P}, std::pair{&run.n, pb::ORIENTATION_N}}) {
            while (!dispatcher->has_credit() && std::chrono::steady_clock::now() < deadline) {
                ASSERT_TRUE(dispatcher->poll(milliseconds(10)).has_value());
            }
            auto [header, payload] =
                encode_frame((*frames)[i], run_id, sequence++, pb::FRAME_KIND_DATA, orientation,
                             encodings[i % 3]);
            ASSERT_TRUE(dispatcher->dispatch(header, std::move(payload)).has_value());
            publish_start();  // re-published during the run, for late subscribers
        }
    }
    while (!dispatcher->drained(run_id) && std::chrono::steady_clock::now() < deadline) {
        ASSERT_TRUE(dispatcher->poll(milliseconds(10)).has_value());
        publish_start();
    }
    ASSERT_TRUE(dispatcher->drained(run_id));
    EXPECT_EQ(dispatcher->counters().frames_acked, run.p.size() + run.n.size());
    // Drained means analyze confirmed every frame (its receipts relayed by the workers).
    EXPECT_EQ(dispatcher->counters().frames_confirmed, run.p.size() + run.n.size());
    pb::RunEnd end;
    end.set_run_id(run_id);
    end.set_reason(pb::RUN_END_REASON_COMPLETED);
    end.mutable_frames_sent()->set_data_p(run.p.size());
    end.mutable_frames_sent()->set_data_n(run.n.size());
    end.mutable_frames_sent()->set_dark(run.darks.size());

    // The final result, and every partial one before it.
    std::optional<transport::ResultMessage> final_result;
    while (!final_result && std::chrono::steady_clock::now() < deadline) {
        auto parts = transport::encode_control(end);
        ASSERT_TRUE(parts.has_value());
        ASSERT_TRUE(transport::try_send(*control, *parts).has_value());
        auto received = transport::receive(*results, milliseconds(200));
        ASSERT_TRUE(received.has_value());
        if (!*received) {
            continue;
        }
        auto decoded = transport::decode(std::move(**received));
        ASSERT_TRUE(decoded.has_value());
        if (auto* result = std::get_if<transport::ResultMessage>(&*decoded);
            result != nullptr && result->header.is_final()) {
            final_result = std::move(*result);
        }
    }
    ASSERT_TRUE(final_result.has_value()) << "no final result within the timeout";
    const pb::AnalysisResult& streamed = final_result->header;
    EXPECT_EQ(streamed.run_id(), run_id);
    EXPECT_EQ(streamed.n_frames_p(), run.p.size());
    EXPECT_EQ(streamed.n_frames_n(), run.n.size());
    EXPECT_EQ(streamed.curves_size(), 7);

    const physics::AnisotropyResult offline = offline_analysis(geometry, start, run);
    const physics::AffineAnalysis& a = offline.affine;
    expect_close(streamed.alpha(), a.alpha, "alpha");
    expect_close(streamed.alpha_stderr(), a.alpha_stderr, "alpha_stderr");
    expect_close(streamed.alpha_full_range(), a.alpha_full_range, "alpha_full_range");
    expect_close(streamed.eps_aff(), a.eps_aff, "eps_aff");
    expect_close(streamed.corr_stretching(), a.corr_stretching, "corr_stretching");
    expect_close(streamed.corr_rotation(), a.corr_rotation, "corr_rotation");
    expect_close(streamed.s2_chi2(), offline.s2_chi2, "s2_chi2");
    EXPECT_EQ(streamed.s2_dof(), offline.s2_dof);
    ASSERT_EQ(streamed.has_r_c_angstrom(), a.r_c_angstrom.has_value());
    if (a.r_c_angstrom) {
        expect_close(streamed.r_c_angstrom(), *a.r_c_angstrom, "r_c");
    }
    EXPECT_EQ(
        pb::Mechanism_Name(streamed.mechanism()), "MECHANISM_" + [&] {
            std::string name(physics::to_string(a.mechanism));
            for (char& c : name) {
                c = c == '-' ? '_' : static_cast<char>(std::toupper(c));
            }
            return name;
        }());
    // A strained sample in pn mode: the analysis saw anisotropy, not a flat line.
    EXPECT_GT(std::abs(streamed.alpha()), 0.0);

    // Archive: the run file is closed once RunEnd went down the feed.
    const std::filesystem::path file = dir / "runs" / archiver::run_file_name(run_id);
    EXPECT_EQ(file.parent_path(), dir / "runs");
    while (metric_value(archive_service->metrics(), "anisoflow_archive_runs_closed_total") < 1.0 &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(milliseconds(20));
    }
    const std::string reduce_metrics_0 = workers[0]->metrics();
    const std::string reduce_metrics_1 = workers[1]->metrics();
    const std::string analyze_metrics = analyze_service->metrics();
    for (auto& worker : workers) {
        EXPECT_TRUE(worker->stop().has_value());
    }
    EXPECT_TRUE(analyze_service->stop().has_value());
    EXPECT_TRUE(archive_service->stop().has_value());

    // Frames in = frames out: each data frame reduced once over both workers, merged once.
    const double reduced_0 =
        metric_value(reduce_metrics_0, "anisoflow_reduce_frames_reduced_total");
    const double reduced_1 =
        metric_value(reduce_metrics_1, "anisoflow_reduce_frames_reduced_total");
    EXPECT_EQ(reduced_0 + reduced_1, static_cast<double>(run.p.size() + run.n.size()));
    EXPECT_EQ(metric_value(reduce_metrics_0, "anisoflow_reduce_calibration_frames_total"),
              static_cast<double>(run.darks.size()));
    EXPECT_EQ(metric_value(analyze_metrics, "anisoflow_analyze_frames_merged_total"),
              static_cast<double>(run.p.size() + run.n.size()));
    EXPECT_EQ(metric_value(analyze_metrics, "anisoflow_analyze_frames_duplicate_total"), 0.0);
    EXPECT_EQ(metric_value(analyze_metrics, "anisoflow_analyze_frames_missing_total"), 0.0);
    EXPECT_EQ(metric_value(analyze_metrics, "anisoflow_analyze_frames_lost_total"), 0.0);

    ASSERT_TRUE(std::filesystem::exists(file)) << file;
    const hid_t h5 = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(h5, 0);
    EXPECT_EQ(read_fixed_string(h5, "/entry/run_state"), "completed");
    auto sequences = read_u64(h5, "/entry/reduced/sequence");
    std::sort(sequences.begin(), sequences.end());
    std::vector<std::uint64_t> expected;
    for (std::uint64_t s = run.darks.size(); s < sequence; ++s) {
        expected.push_back(s);
    }
    EXPECT_EQ(sequences, expected);
    const std::vector<double> alphas = read_doubles(h5, "/entry/results/alpha");
    ASSERT_FALSE(alphas.empty());
    EXPECT_EQ(alphas.back(), streamed.alpha());
    const auto finals = read_u64(h5, "/entry/results/is_final");
    ASSERT_EQ(finals.size(), alphas.size());
    EXPECT_EQ(finals.back(), 1U);
    H5Fclose(h5);
    std::filesystem::remove_all(sockets);
}

// A run announcing the integrating noise model with no read noise needs two darks to estimate it
// (docs/reduction.md, "Noise models"): with one, the worker refuses the run's data frames with a
// reason naming the field, and acknowledges them REJECTED so that ingest does not send them round.
TEST(ServicesPipeline, IntegratingNoiseModelWithoutReadNoiseOrTwoDarksRejectsTheFramesByName) {
    const std::filesystem::path sockets =
        std::filesystem::temp_directory_path() / ("afi-" + std::to_string(::getpid()));
    std::filesystem::create_directories(sockets);
    const auto ipc = [&](const char* name) { return "ipc://" + (sockets / name).string(); };
    cfg::ReduceConfig reduce;
    ASSERT_TRUE(runtime::merge_defaults(reduce).has_value());
    reduce.set_instance("reduce-integrating");
    set_socket(reduce.mutable_endpoints()->mutable_frames_in(), ">" + ipc("frames"));
    set_socket(reduce.mutable_endpoints()->mutable_control_in(), ">" + ipc("control"));
    set_socket(reduce.mutable_endpoints()->mutable_reduced_out(), ">" + ipc("reduced"));
    reduce.set_heartbeat_interval_ms(200);

    zmq::context_t context;
    auto dispatcher = transport::Dispatcher::open(context, "@" + ipc("frames"));
    ASSERT_TRUE(dispatcher.has_value()) << dispatcher.error().message;
    auto worker = start_service(
        "reduce", [&](runtime::ServiceContext& c) { return reducer::run(reduce, c); });
    ASSERT_TRUE(worker);
    const auto deadline = std::chrono::steady_clock::now() + kChainTimeout;
    while (dispatcher->workers_alive() < 1 && std::chrono::steady_clock::now() < deadline) {
        ASSERT_TRUE(dispatcher->poll(milliseconds(50)).has_value());
    }
    ASSERT_EQ(dispatcher->workers_alive(), 1U);

    const geometry::PoniGeometry poni = small_detector();
    const geometry::DetectorGeometry geometry(poni);
    const SimulatedRun run = simulate(geometry);
    pb::RunStart start = make_run_start(poni);
    start.set_run_id("integrating-one-dark");
    start.mutable_config()->set_variance_model(pb::VARIANCE_MODEL_INTEGRATING);
    ASSERT_TRUE(dispatcher->start_run(start).has_value());
    auto [dark_header, dark] =
        encode_frame(run.darks.front(), start.run_id(), 0, pb::FRAME_KIND_DARK,
                     pb::ORIENTATION_UNSPECIFIED, pb::ENCODING_RAW);
    ASSERT_TRUE(dispatcher->dispatch(dark_header, std::move(dark)).has_value());
    while (!dispatcher->has_credit() && std::chrono::steady_clock::now() < deadline) {
        ASSERT_TRUE(dispatcher->poll(milliseconds(10)).has_value());
    }
    auto [header, payload] = encode_frame(run.p.front(), start.run_id(), 1, pb::FRAME_KIND_DATA,
                                          pb::ORIENTATION_P, pb::ENCODING_RAW);
    ASSERT_TRUE(dispatcher->dispatch(header, std::move(payload)).has_value());
    while (dispatcher->counters().frames_rejected < 1 &&
           std::chrono::steady_clock::now() < deadline) {
        ASSERT_TRUE(dispatcher->poll(milliseconds(10)).has_value());
    }
    EXPECT_EQ(dispatcher->counters().frames_rejected, 1U);
    EXPECT_EQ(
        metric_value(worker->metrics(), "anisoflow_reduce_errors_total{reason=\"bad_run_start\"}"),
        1.0)
        << worker->metrics();
    EXPECT_TRUE(worker->stop().has_value());
    std::filesystem::remove_all(sockets);
}

TEST(ArchiveRunFileName, KeepsSafeIdsAndConfinesTheRestToOneFileName) {
    EXPECT_EQ(archiver::run_file_name("run-01_a.b"), "run-01_a.b.nxs");
    for (const char* id : {"../../etc/passwd", "/abs/path", "..", "", "a/b", "a\\b", ".hidden"}) {
        const std::string name = archiver::run_file_name(id);
        EXPECT_EQ(name.find('/'), std::string::npos) << id;
        EXPECT_EQ(name.find('\\'), std::string::npos) << id;
        EXPECT_NE(name.front(), '.') << id;
        EXPECT_EQ(std::filesystem::path(name).filename().string(), name) << id;
    }
    // Ids that differ only in replaced characters still get different files.
    EXPECT_NE(archiver::run_file_name("a/b"), archiver::run_file_name("a:b"));
}

TEST(CakeAccumulatorSums, RebuildingFromTheSumsGivesTheSameMeanCake) {
    reduce::CakeAxes axes;
    axes.n_q = 3;
    axes.n_chi = 2;
    axes.q_min_inv_angstrom = 1.0;
    axes.q_max_inv_angstrom = 4.0;
    auto sums = reduce::CakeAccumulator::from_sums(axes, {1, 2, 3, 4, 5, 6}, {1, 1, 1, 2, 2, 2},
                                                   {2, 2, 2, 1, 1, 0}, {3, 3, 3, 1, 1, 0}, 1);
    ASSERT_TRUE(sums.has_value());
    const reduce::Cake cake = sums->finish();
    EXPECT_DOUBLE_EQ(cake.intensity[0], 0.5);
    EXPECT_DOUBLE_EQ(cake.variance[3], 2.0);
    EXPECT_TRUE(std::isnan(cake.intensity[5]));  // no pixel reached the cell
    EXPECT_EQ(std::vector<double>(sums->signal_sums().begin(), sums->signal_sums().end()),
              (std::vector<double>{1, 2, 3, 4, 5, 6}));
    EXPECT_FALSE(reduce::CakeAccumulator::from_sums(axes, {1}, {}, {}, {}, 1).has_value());
}

}  // namespace
}  // namespace anisoflow
