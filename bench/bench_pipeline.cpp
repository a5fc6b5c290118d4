// bench_pipeline: the whole streaming chain on this machine. anisoflow-ingest, N reduce workers,
// analyze and archive run their real service loops on threads of this process over ipc://
// sockets (the same code as the binaries; one process so that one command measures it all); the
// benchmark is the detector, pushing 2048 x 2048 uint16 frames of a simulated glass into
// ingest's stream socket as anisoflow simulate --stream does, and a subscriber of the results.
//
// It prints, measured in the same run (these machines are noisy: ratios travel):
// - a memcpy of one frame, the yardstick;
// - throughput: frames sent unpaced (ingest's backpressure sets the pace) / time from the first
//   frame sent to the final result, with the frames the final result holds (0 lost or the run
//   is reported as failed), and the CPU time (user + system, all threads) it took per frame;
// - latency at a fixed frame rate: for each data frame, the time from its sending to the first
//   published result whose count of merged frames of its orientation reaches it (results come
//   every --recompute-ms, so that interval bounds the latency from below), p50 and p99 of all
//   frames, and p99 of the frames sent 1 s or more after the run's first (apart from the run's
//   start, where each reducer builds the run's integrator on its first data frame).
//
//   bench_pipeline [--frames N] [--rows R] [--cols C] [--reducers W] [--reduce-threads T]
//                  [--latency-fps F] [--latency-frames M] [--recompute-ms I] [--distinct D]
//                  [--raw off,lz4,bslz4,none] [--detector raw,lz4,bslz4]
//   (defaults: 100 frames per orientation, 2048 x 2048, 2 reducers x 1 thread, 50 frames per
//   orientation at 10 fps for the latency, results every 100 ms, 4 distinct frames per
//   orientation cycled, raw archiving off then lz4, the detector sending raw pixels)
//
// --detector lz4 or bslz4: the detector sends its frames compressed, as DECTRIS detectors do
// (lz4 in the HDF5 filter framing, bslz4 with its 12-byte header), compressed once here before
// the runs since the frames are cycled. Archive then stores those payloads as they came and
// compresses nothing, whatever --raw says; the reducers decompress them. Each (detector, raw)
// pair is a row of its own.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zmq.hpp>

#include "anisoflow/codec/bitshuffle.hpp"
#include "anisoflow/codec/lz4.hpp"
#include "anisoflow/geometry/detector_geometry.hpp"
#include "anisoflow/metrics/metrics.hpp"
#include "anisoflow/physics/scattering_factors.hpp"
#include "anisoflow/runtime/config_loader.hpp"
#include "anisoflow/runtime/memory_trimmer.hpp"
#include "anisoflow/runtime/service_config.hpp"
#include "anisoflow/runtime/service_main.hpp"
#include "anisoflow/runtime/service_thread.hpp"
#include "anisoflow/sim/frame_renderer.hpp"
#include "anisoflow/transport/experiment.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/payload.hpp"
#include "anisoflow/transport/socket.hpp"

#include "analyze_service.hpp"
#include "archive_service.hpp"
#include "ingest_service.hpp"
#include "open_run_store.hpp"
#include "reduce_service.hpp"

namespace {

namespace fs = std::filesystem;
namespace pb = ::anisoflow::stream::v1;
namespace cfg = ::anisoflow::runtime::cfg;
namespace runtime = ::anisoflow::runtime;
namespace transport = ::anisoflow::transport;
using anisoflow::Frame;
using anisoflow::Result;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kComposition = "Zr52.5Cu17.9Ni14.6Al10Ti5";
constexpr double kDensity = 0.0553;
constexpr double kNu = 0.37;
constexpr auto kChainTimeout = std::chrono::minutes(10);
constexpr auto kSettleTime = std::chrono::seconds(1);

struct Options {
    std::size_t frames = 100;  // per orientation, throughput run
    std::size_t rows = 2048;
    std::size_t cols = 2048;
    std::size_t reducers = 2;
    std::size_t reduce_threads = 1;
    double latency_fps = 10.0;
    std::size_t latency_frames = 50;  // per orientation
    std::uint32_t recompute_ms = 100;
    std::size_t distinct = 4;  // distinct simulated frames per orientation, cycled
    // Raw archiving modes measured one after the other: off, or the archive's raw_compression.
    std::vector<std::string> raw_modes = {"off", "lz4"};
    // What the detector sends: raw pixels, or payloads it compressed itself (lz4, bslz4).
    std::vector<std::string> detector_modes = {"raw"};
};

std::int64_t unix_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// A setup or transport failure of the benchmark itself (already printed): no figure would mean
// anything, so the process ends here, whichever thread finds it.
[[noreturn]] void die() {
    std::fflush(stderr);
    std::_Exit(1);
}

// A service loop on a thread of the benchmark (runtime::ServiceThread); a failure to start or
// an error at stop is reported, as the benchmark's other failures are.
std::unique_ptr<runtime::ServiceThread> start_service(const char* name,
                                                      runtime::ServiceThread::Loop loop) {
    auto started = runtime::ServiceThread::start(name, std::move(loop));
    if (!started) {
        std::fprintf(stderr, "bench_pipeline: %s: %s\n", name, started.error().message.c_str());
        die();
    }
    return std::move(*started);
}

void stop_service(runtime::ServiceThread& service, const char* name) {
    if (auto stopped = service.stop(); !stopped) {
        std::fprintf(stderr, "bench_pipeline: %s stopped with: %s\n", name,
                     stopped.error().message.c_str());
    }
}

// The mission's detector: 200 um pixels, 100 keV, centred beam; 0.35 m puts Q ~ 24 1/A on the
// corners of 2048 x 2048 (scaled with the detector's size for smaller runs).
anisoflow::geometry::PoniGeometry detector(const Options& o) {
    anisoflow::geometry::PoniGeometry poni;
    poni.detector = {"Detector", 200e-6, 200e-6, anisoflow::FrameShape{o.rows, o.cols}};
    poni.distance_m = 0.35 * static_cast<double>(std::max(o.rows, o.cols)) / 2048.0;
    poni.poni1_m = static_cast<double>(o.rows) * 100e-6;
    poni.poni2_m = static_cast<double>(o.cols) * 100e-6;
    poni.wavelength_m = 0.123984e-10;
    return poni;
}

// A frame as the detector sends it: its pixels, and the payload when the detector compresses.
struct DetectorFrame {
    Frame frame;
    pb::Encoding encoding = pb::ENCODING_RAW;
    std::vector<std::byte> compressed;  // the payload unless encoding is RAW
};

struct SimulatedFrames {
    DetectorFrame dark;
    DetectorFrame flat;
    std::vector<DetectorFrame> p;
    std::vector<DetectorFrame> n;
};

std::span<const std::byte> pixel_bytes(const Frame& frame) {
    const auto& pixels = std::get<std::vector<std::uint16_t>>(frame.pixels);
    return {reinterpret_cast<const std::byte*>(pixels.data()),  // NOLINT: the pixels' bytes
            pixels.size() * sizeof(std::uint16_t)};
}

// The detector's own compression of every frame ("raw": none), done once before the runs.
void encode_as(SimulatedFrames& frames, const std::string& mode) {
    const auto encode = [&](DetectorFrame& f) {
        f.compressed.clear();
        f.encoding = pb::ENCODING_RAW;
        if (mode == "raw") {
            return;
        }
        auto compressed = mode == "lz4" ? anisoflow::codec::lz4_hdf5_compress(pixel_bytes(f.frame))
                                        : anisoflow::codec::bslz4_compress(pixel_bytes(f.frame),
                                                                           sizeof(std::uint16_t));
        if (!compressed) {
            std::fprintf(stderr, "bench_pipeline: %s\n", compressed.error().message.c_str());
            die();
        }
        f.compressed = std::move(*compressed);
        f.encoding = mode == "lz4" ? pb::ENCODING_LZ4 : pb::ENCODING_BSLZ4;
    };
    encode(frames.dark);
    encode(frames.flat);
    for (auto* series : {&frames.p, &frames.n}) {
        for (DetectorFrame& f : *series) {
            encode(f);
        }
    }
}

// Mean compressed size of the data frames over their raw size.
double compression_ratio(const SimulatedFrames& frames) {
    double raw = 0.0;
    double sent = 0.0;
    for (const auto* series : {&frames.p, &frames.n}) {
        for (const DetectorFrame& f : *series) {
            raw += static_cast<double>(pixel_bytes(f.frame).size());
            sent += static_cast<double>(f.encoding == pb::ENCODING_RAW ? pixel_bytes(f.frame).size()
                                                                       : f.compressed.size());
        }
    }
    return sent > 0.0 ? raw / sent : 1.0;
}

std::optional<SimulatedFrames> simulate(const anisoflow::geometry::DetectorGeometry& geometry,
                                        const Options& o) {
    namespace sim = anisoflow::sim;
    auto factors = anisoflow::physics::ScatteringFactors::from_formula(kComposition);
    if (!factors) {
        return std::nullopt;
    }
    sim::AtomicTermsTable atomic;
    const double q_max_inv_angstrom = geometry.pixel_q_range().max_inv_angstrom + 0.1;
    for (double q = 0.0; q <= q_max_inv_angstrom; q += 0.01) {
        const auto averages = factors->at(q);
        atomic.q_inv_angstrom.push_back(q);
        atomic.mean_f_squared.push_back(averages.mean_f_squared);
        atomic.mean_squared_f.push_back(averages.mean_squared_f);
        atomic.compton.push_back(averages.compton);
    }
    auto structure = sim::HardSphereStructure::create({kDensity, 0.55, 0.15});
    auto renderer = sim::FrameRenderer::create(geometry, atomic);
    if (!structure || !renderer) {
        return std::nullopt;
    }
    sim::RenderSettings settings;
    settings.counts_scale = 20.0;
    settings.strain = sim::UniaxialStrain{0.006, kNu};
    settings.read_noise_counts = 2.0;
    SimulatedFrames frames;
    settings.seed = sim::frame_seed(1, sim::FrameSeries::kDark, 0);
    frames.dark.frame = renderer->render_dark(settings);
    frames.flat = frames.dark;  // a flat of the dark's level: the corrections still run
    for (std::size_t i = 0; i < o.distinct; ++i) {
        for (const auto orientation : {sim::Orientation::kP, sim::Orientation::kN}) {
            const bool p = orientation == sim::Orientation::kP;
            settings.orientation = orientation;
            settings.seed = sim::frame_seed(1, p ? sim::FrameSeries::kP : sim::FrameSeries::kN, i);
            auto frame = renderer->render(*structure, settings);
            if (!frame) {
                return std::nullopt;
            }
            (p ? frames.p : frames.n).push_back(DetectorFrame{std::move(*frame), {}, {}});
        }
    }
    return frames;
}

pb::RunStart run_start(const std::string& run_id, const anisoflow::geometry::PoniGeometry& poni,
                       const anisoflow::geometry::DetectorGeometry& geometry) {
    pb::RunStart start;
    start.set_run_id(run_id);
    start.set_started_unix_ns(unix_now_ns());
    start.set_source_version("bench_pipeline");
    pb::ExperimentConfig& c = *start.mutable_config();
    *c.mutable_geometry() = transport::to_message(poni);
    c.set_composition(kComposition);
    c.set_density_per_cubic_angstrom(kDensity);
    c.set_nu(kNu);
    c.set_loading_axis_chi_deg(0.0);
    c.set_mode(pb::EXTRACTION_MODE_PN);
    // analyze's defaults (SPEC 8), Q up to the largest full ring.
    c.set_q_min_inv_angstrom(0.5);
    c.set_q_max_inv_angstrom(geometry.full_ring_q_inv_angstrom());
    c.set_n_q(1000);
    c.set_n_chi(72);
    c.set_r_max_angstrom(25.0);
    c.set_n_r(2000);
    c.set_r_fit_min_angstrom(2.3);
    c.set_r_fit_max_angstrom(20.0);
    c.set_normalisation(pb::NORMALISATION_HIGH_Q);
    c.set_r_poly_angstrom(0.9);
    c.set_polarization_factor(0.99);
    return start;
}

// The detector side: a PUSH into ingest's stream socket; blocks while ingest holds it back.
class Detector {
  public:
    explicit Detector(zmq::context_t& context, const std::string& address) {
        transport::SocketOptions options;
        options.send_hwm = 4;
        options.linger = std::chrono::seconds(10);
        auto socket = transport::open_socket(context, zmq::socket_type::push, address, options);
        if (!socket) {
            std::fprintf(stderr, "bench_pipeline: %s\n", socket.error().message.c_str());
            die();
        }
        socket_ = std::move(*socket);
    }

    void send(transport::Multipart parts) {
        while (true) {
            auto sent = transport::send(socket_, parts, std::chrono::seconds(60));
            if (!sent) {
                std::fprintf(stderr, "bench_pipeline: send: %s\n", sent.error().message.c_str());
                die();
            }
            if (*sent) {
                return;
            }
            std::fprintf(stderr, "bench_pipeline: ingest has not accepted a frame for 60 s\n");
        }
    }

    void send_frame(const std::string& run_id, std::uint64_t sequence, const DetectorFrame& sent,
                    pb::FrameKind kind, pb::Orientation orientation) {
        const Frame& frame = sent.frame;
        pb::FrameHeader header;
        header.set_run_id(run_id);
        header.set_sequence(sequence);
        header.set_kind(kind);
        header.set_orientation(orientation);
        header.set_acquired_unix_ns(unix_now_ns());
        header.set_sent_unix_ns(unix_now_ns());
        header.set_encoding(sent.encoding);
        header.set_dtype(transport::to_pixel_dtype(frame.pixel_type()));
        header.set_rows(static_cast<std::uint32_t>(frame.shape.rows));
        header.set_cols(static_cast<std::uint32_t>(frame.shape.cols));
        const std::span<const std::byte> pixels = pixel_bytes(frame);
        header.set_uncompressed_size_bytes(pixels.size());
        const std::span<const std::byte> bytes = sent.encoding == pb::ENCODING_RAW
                                                     ? pixels
                                                     : std::span<const std::byte>(sent.compressed);
        auto parts = transport::encode_frame(header, transport::copy_payload(bytes));
        if (!parts) {
            std::fprintf(stderr, "bench_pipeline: %s\n", parts.error().message.c_str());
            die();
        }
        send(std::move(*parts));
    }

  private:
    zmq::socket_t socket_;
};

struct ResultSeen {
    Clock::time_point at;
    std::uint64_t frames_p;
    std::uint64_t frames_n;
    bool is_final;
};

// Reads analyze's results PUB until the final result of `run_id` (or the timeout).
std::vector<ResultSeen> follow_results(zmq::socket_t& results, const std::string& run_id) {
    std::vector<ResultSeen> seen;
    const auto deadline = Clock::now() + kChainTimeout;
    while (Clock::now() < deadline) {
        auto received = transport::receive(results, milliseconds(50));
        if (!received || !*received) {
            continue;
        }
        auto decoded = transport::decode(std::move(**received));
        if (!decoded) {
            continue;
        }
        const auto* result = std::get_if<transport::ResultMessage>(&*decoded);
        if (result == nullptr || result->header.run_id() != run_id) {
            continue;
        }
        seen.push_back({Clock::now(), result->header.n_frames_p(), result->header.n_frames_n(),
                        result->header.is_final()});
        if (result->header.is_final()) {
            break;
        }
    }
    return seen;
}

double percentile(std::vector<double> values, double fraction) {
    if (values.empty()) {
        return std::nan("");
    }
    std::sort(values.begin(), values.end());
    const auto index =
        static_cast<std::size_t>(std::ceil(fraction * static_cast<double>(values.size())) - 1.0);
    return values[std::min(index, values.size() - 1)];
}

struct RunFigures {
    double seconds = 0.0;
    std::uint64_t sent = 0;
    std::uint64_t in_final = 0;
    std::vector<double> latency_ms;  // the P frames' in order, then the N frames'
    std::size_t latency_sent_p = 0;  // how many of latency_ms are P frames'
    // The same for the frames sent kSettleTime or more after the run's first: without the run's
    // start (each reducer builds the run's integrator when its first data frame comes).
    std::vector<double> settled_latency_ms;
};

class Chain {
  public:
    Chain(const Options& o, const fs::path& dir, const std::string& raw_mode) {
        // "@ipc://DIR/name" binds, ">ipc://DIR/name" connects. Formatted rather than built with
        // operator+ on a temporary: GCC 12 reports a false -Wrestrict there (PR 105329).
        const auto bind = [&](const char* name) {
            return fmt::format("@ipc://{}", (dir / name).string());
        };
        const auto connect = [&](const char* name) {
            return fmt::format(">ipc://{}", (dir / name).string());
        };
        cfg::IngestConfig ingest;
        check(runtime::merge_defaults(ingest), "ingest defaults");
        ingest.mutable_source()->set_kind(cfg::SOURCE_KIND_ANISOFLOW_STREAM);
        ingest.mutable_source()->set_stream_address(bind("stream"));
        ingest.mutable_endpoints()->mutable_frames_out()->set_address(bind("frames"));
        ingest.mutable_endpoints()->mutable_control_out()->set_address(bind("control"));
        ingest.mutable_metrics()->set_enabled(false);
        if (raw_mode != "off") {
            ingest.mutable_endpoints()->mutable_raw_out()->set_address(bind("raw"));
        }
        ingest_config_ = ingest;
        stream_address_ = connect("stream");

        cfg::AnalyzeConfig analyze;
        check(runtime::merge_defaults(analyze), "analyze defaults");
        analyze.mutable_endpoints()->mutable_reduced_in()->set_address(bind("reduced"));
        analyze.mutable_endpoints()->mutable_control_in()->set_address(connect("control"));
        analyze.mutable_endpoints()->mutable_results_out()->set_address(bind("results"));
        analyze.mutable_endpoints()->mutable_archive_out()->set_address(bind("archive"));
        analyze.set_recompute_interval_ms(o.recompute_ms);
        analyze.mutable_metrics()->set_enabled(false);
        analyze_config_ = analyze;

        cfg::ArchiveConfig archive;
        check(runtime::merge_defaults(archive), "archive defaults");
        archive.mutable_endpoints()->mutable_archive_in()->set_address(connect("archive"));
        archive.set_archive_dir((dir / "runs").string());
        archive.mutable_metrics()->set_enabled(false);
        if (raw_mode != "off") {
            archive.mutable_endpoints()->mutable_raw_in()->set_address(connect("raw"));
            archive.set_raw_compression(raw_mode);
        }
        archive_config_ = archive;

        for (std::size_t i = 0; i < o.reducers; ++i) {
            cfg::ReduceConfig reduce;
            check(runtime::merge_defaults(reduce), "reduce defaults");
            reduce.set_instance("reduce-" + std::to_string(i));
            reduce.mutable_endpoints()->mutable_frames_in()->set_address(connect("frames"));
            reduce.mutable_endpoints()->mutable_control_in()->set_address(connect("control"));
            reduce.mutable_endpoints()->mutable_reduced_out()->set_address(connect("reduced"));
            reduce.set_threads(static_cast<std::uint32_t>(o.reduce_threads));
            reduce.mutable_metrics()->set_enabled(false);
            reduce_configs_.push_back(reduce);
        }

        auto service = anisoflow::ingest::IngestService::create(ingest_config_, ingest_registry_);
        check(service, "ingest");
        ingest_.emplace(std::move(*service));
        ingest_stop_.emplace(*runtime::StopSource::create());
        ingest_thread_ = std::thread([this] { ingest_result_ = ingest_->run(*ingest_stop_); });
        analyze_ = start_service("analyze", [this](runtime::ServiceContext& c) {
            return anisoflow::analyzer::run(analyze_config_, c);
        });
        archive_ = start_service("archive", [this](runtime::ServiceContext& c) {
            return anisoflow::archiver::run(archive_config_, c);
        });
        for (const cfg::ReduceConfig& reduce : reduce_configs_) {
            reducers_.push_back(start_service("reduce", [&reduce](runtime::ServiceContext& c) {
                return anisoflow::reducer::run(reduce, c);
            }));
        }
        auto results = transport::open_socket(context_, zmq::socket_type::sub, connect("results"),
                                              transport::SocketOptions{});
        check(results, "results");
        results_ = std::move(*results);
        detector_ = std::make_unique<Detector>(context_, stream_address_);
        // The workers need a moment to connect and announce their credits; the first run's
        // frames would otherwise wait for them (and count in the figures).
        std::this_thread::sleep_for(milliseconds(500));
    }

    ~Chain() {
        detector_.reset();
        for (auto& reducer : reducers_) {
            stop_service(*reducer, "reduce");
        }
        stop_service(*analyze_, "analyze");
        stop_service(*archive_, "archive");
        ingest_stop_->request_stop();
        ingest_thread_.join();
        if (!ingest_result_) {
            std::fprintf(stderr, "bench_pipeline: ingest stopped with: %s\n",
                         ingest_result_.error().message.c_str());
        }
    }
    Chain(const Chain&) = delete;
    Chain& operator=(const Chain&) = delete;

    [[nodiscard]] std::string archive_metrics() const { return archive_->metrics(); }

    // Every service's metrics, in the Prometheus text format.
    [[nodiscard]] std::string metrics() const {
        std::string text = ingest_registry_.serialize();
        text += analyze_->metrics();
        for (const auto& reducer : reducers_) {
            text += reducer->metrics();
        }
        return text;
    }
    Chain(Chain&&) = delete;
    Chain& operator=(Chain&&) = delete;

    // One run of `frames_per_orientation` P and N frames (interleaved) at `fps` (0: unpaced).
    RunFigures run(const std::string& run_id, const SimulatedFrames& frames,
                   const pb::RunStart& start_template, std::size_t frames_per_orientation,
                   double fps) {
        pb::RunStart start = start_template;
        start.set_run_id(run_id);
        start.mutable_config()->mutable_frames_expected()->set_data_p(frames_per_orientation);
        start.mutable_config()->mutable_frames_expected()->set_data_n(frames_per_orientation);
        auto start_parts = transport::encode_control(start);
        check(start_parts, "RunStart");
        detector_->send(std::move(*start_parts));
        std::uint64_t sequence = 0;
        detector_->send_frame(run_id, sequence++, frames.dark, pb::FRAME_KIND_DARK,
                              pb::ORIENTATION_UNSPECIFIED);
        detector_->send_frame(run_id, sequence++, frames.flat, pb::FRAME_KIND_FLAT,
                              pb::ORIENTATION_UNSPECIFIED);

        RunFigures figures;
        std::vector<Clock::time_point> sent_p;
        std::vector<Clock::time_point> sent_n;
        std::vector<ResultSeen> seen;
        std::thread subscriber([&] { seen = follow_results(results_, run_id); });
        const auto period = fps > 0.0 ? std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(1.0 / fps))
                                      : Clock::duration::zero();
        const auto first = Clock::now();
        auto next = first;
        for (std::size_t i = 0; i < frames_per_orientation; ++i) {
            for (const bool p : {true, false}) {
                std::this_thread::sleep_until(next);
                next += period;
                const DetectorFrame& frame = (p ? frames.p : frames.n)[i % frames.p.size()];
                (p ? sent_p : sent_n).push_back(Clock::now());
                detector_->send_frame(run_id, sequence++, frame, pb::FRAME_KIND_DATA,
                                      p ? pb::ORIENTATION_P : pb::ORIENTATION_N);
            }
        }
        pb::RunEnd end;
        end.set_run_id(run_id);
        end.mutable_frames_sent()->set_dark(1);
        end.mutable_frames_sent()->set_flat(1);
        end.mutable_frames_sent()->set_data_p(frames_per_orientation);
        end.mutable_frames_sent()->set_data_n(frames_per_orientation);
        end.set_reason(pb::RUN_END_REASON_COMPLETED);
        end.set_ended_unix_ns(unix_now_ns());
        auto end_parts = transport::encode_control(end);
        check(end_parts, "RunEnd");
        detector_->send(std::move(*end_parts));
        subscriber.join();

        figures.sent = 2 * frames_per_orientation;
        if (seen.empty() || !seen.back().is_final) {
            std::fprintf(stderr, "bench_pipeline: no final result for %s\n", run_id.c_str());
            return figures;
        }
        figures.seconds = std::chrono::duration<double>(seen.back().at - first).count();
        figures.in_final = seen.back().frames_p + seen.back().frames_n;
        // Frame k of an orientation is in a result once that result merged > k of them.
        for (const bool p : {true, false}) {
            const auto& sent = p ? sent_p : sent_n;
            if (!p) {
                figures.latency_sent_p = figures.latency_ms.size();
            }
            for (std::size_t k = 0; k < sent.size(); ++k) {
                for (const ResultSeen& result : seen) {
                    if ((p ? result.frames_p : result.frames_n) > k) {
                        const double ms =
                            std::chrono::duration<double, std::milli>(result.at - sent[k]).count();
                        figures.latency_ms.push_back(ms);
                        if (sent[k] - first >= kSettleTime) {
                            figures.settled_latency_ms.push_back(ms);
                        }
                        break;
                    }
                }
            }
        }
        return figures;
    }

  private:
    template <class R>
    static void check(const R& result, const char* what) {
        if (!result) {
            std::fprintf(stderr, "bench_pipeline: %s: %s\n", what, result.error().message.c_str());
            die();
        }
    }

    zmq::context_t context_;
    cfg::IngestConfig ingest_config_;
    cfg::AnalyzeConfig analyze_config_;
    cfg::ArchiveConfig archive_config_;
    std::vector<cfg::ReduceConfig> reduce_configs_;
    std::string stream_address_;
    anisoflow::metrics::Registry ingest_registry_;
    std::optional<anisoflow::ingest::IngestService> ingest_;
    std::optional<runtime::StopSource> ingest_stop_;
    Result<void> ingest_result_;
    std::thread ingest_thread_;
    std::unique_ptr<runtime::ServiceThread> analyze_;
    std::unique_ptr<runtime::ServiceThread> archive_;
    std::vector<std::unique_ptr<runtime::ServiceThread>> reducers_;
    zmq::socket_t results_;
    std::unique_ptr<Detector> detector_;
};

// Sum and count of a histogram in Prometheus text (all its series added up).
// The value of a metric in Prometheus text, all its series added up.
double metric_total(const std::string& text, const std::string& name) {
    double total = 0.0;
    for (std::size_t at = 0; at < text.size();) {
        const std::size_t end = std::min(text.find('\n', at), text.size());
        const std::string_view line(text.data() + at, end - at);
        if (line.starts_with(name) && line.size() > name.size() &&
            (line[name.size()] == ' ' || line[name.size()] == '{')) {
            total += std::strtod(std::string(line.substr(line.rfind(' ') + 1)).c_str(), nullptr);
        }
        at = end + 1;
    }
    return total;
}

std::pair<double, double> histogram_totals(const std::string& text, const std::string& name) {
    return {metric_total(text, name + "_sum"), metric_total(text, name + "_count")};
}

// Waits (at most a minute) until archive has closed `runs` run files: the next run then starts
// on an idle chain, not behind the raw frames the unpaced run left in archive's queues.
void wait_archived(const Chain& chain, double runs) {
    const auto deadline = Clock::now() + std::chrono::minutes(1);
    while (metric_total(chain.archive_metrics(), "anisoflow_archive_runs_closed_total") < runs) {
        if (Clock::now() > deadline) {
            std::fprintf(stderr, "bench_pipeline: archive has not closed %.0f run files\n", runs);
            return;
        }
        std::this_thread::sleep_for(milliseconds(20));
    }
}

// Where a run's latency went, from the services' own histograms (means over the run, ms):
// ingest's arrival -> hand-over to a worker, a worker's receipt -> cake sent (queue, decompression,
// integration, send), analyze's cake arrival -> first result holding it (and one analysis), and
// the frame's acquisition -> that result (the whole chain).
void print_stages(const std::string& before, const std::string& after) {
    const auto mean_ms = [&](const char* name) {
        const auto [sum0, count0] = histogram_totals(before, name);
        const auto [sum1, count1] = histogram_totals(after, name);
        return count1 > count0 ? 1000.0 * (sum1 - sum0) / (count1 - count0) : std::nan("");
    };
    std::fprintf(stderr,
                 "    stage means: ingest dispatch %.1f ms, reduce %.1f ms, analyze cake -> "
                 "result %.1f ms (analysis %.1f ms); acquisition -> result %.1f ms\n",
                 mean_ms("anisoflow_ingest_dispatch_latency_seconds"),
                 mean_ms("anisoflow_reduce_frame_latency_seconds"),
                 mean_ms("anisoflow_analyze_result_latency_seconds"),
                 mean_ms("anisoflow_analyze_analysis_duration_seconds"),
                 mean_ms("anisoflow_analyze_frame_to_result_seconds"));
}

// The latency run's three slowest frames on stderr (which frame, which orientation): where the
// tail comes from.
void print_slowest(const RunFigures& figures) {
    std::vector<std::size_t> order(figures.latency_ms.size());
    for (std::size_t i = 0; i < order.size(); ++i) {
        order[i] = i;
    }
    const std::size_t shown = std::min<std::size_t>(3, order.size());
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(shown),
                      order.end(), [&](std::size_t a, std::size_t b) {
                          return figures.latency_ms[a] > figures.latency_ms[b];
                      });
    std::fprintf(stderr, "    slowest:");
    for (std::size_t i = 0; i < shown; ++i) {
        const std::size_t k = order[i];
        const bool p = k < figures.latency_sent_p;
        std::fprintf(stderr, " %s%zu %.1f ms", p ? "P" : "N", p ? k : k - figures.latency_sent_p,
                     figures.latency_ms[k]);
    }
    std::fprintf(stderr, "\n");
}

// CPU time (user + system) of this process so far, every thread of every service: what the
// chain costs, whatever else runs on the machine.
double process_cpu_ms() {
    rusage usage{};
    if (getrusage(RUSAGE_SELF, &usage) != 0) {
        return std::nan("");
    }
    const auto ms = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_usec) * 1e-3;
    };
    return ms(usage.ru_utime) + ms(usage.ru_stime);
}

double memcpy_ms(std::size_t bytes) {
    std::vector<std::byte> from(bytes, std::byte{1});
    std::vector<std::byte> to(bytes);
    double best = 1e300;
    for (int repeat = 0; repeat < 20; ++repeat) {
        const auto t0 = Clock::now();
        std::memcpy(to.data(), from.data(), bytes);
        const auto t1 = Clock::now();
        best = std::min(best, std::chrono::duration<double, std::milli>(t1 - t0).count());
        from[static_cast<std::size_t>(repeat)] = to[bytes - 1 - static_cast<std::size_t>(repeat)];
    }
    return best;
}

// Ingest with state_dir rewrites its open run after every dispatched frame (docs/faults.md, "A
// killed ingest"): the median time of one such save, in ms, on this machine's temp directory.
double open_run_save_ms(const pb::RunStart& start, const fs::path& dir) {
    auto store = anisoflow::ingest::OpenRunStore::open(dir / "ingest-state");
    if (!store) {
        std::fprintf(stderr, "bench_pipeline: %s\n", store.error().message.c_str());
        return 0.0;
    }
    anisoflow::state::v1::IngestOpenRun open;
    *open.mutable_start() = start;
    std::vector<double> times;
    for (std::uint64_t sequence = 0; sequence < 200; ++sequence) {
        open.mutable_frames_sent()->set_data_p(sequence);
        open.set_sequences_end(sequence + 1);
        const auto t0 = Clock::now();
        if (auto saved = store->save(open); !saved) {
            std::fprintf(stderr, "bench_pipeline: %s\n", saved.error().message.c_str());
            return 0.0;
        }
        times.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    return percentile(times, 0.50);
}

std::vector<std::string> split(const std::string& list) {
    std::vector<std::string> items;
    for (std::size_t at = 0; at <= list.size();) {
        const std::size_t comma = std::min(list.find(',', at), list.size());
        items.push_back(list.substr(at, comma - at));
        at = comma + 1;
    }
    return items;
}

bool parse(int argc, char** argv, Options& o) {
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string key = argv[i];
        const char* value = argv[i + 1];
        const auto number = [&] { return std::strtoull(value, nullptr, 10); };
        if (key == "--frames") {
            o.frames = number();
        } else if (key == "--rows") {
            o.rows = number();
        } else if (key == "--cols") {
            o.cols = number();
        } else if (key == "--reducers") {
            o.reducers = number();
        } else if (key == "--reduce-threads") {
            o.reduce_threads = number();
        } else if (key == "--latency-fps") {
            o.latency_fps = std::strtod(value, nullptr);
        } else if (key == "--latency-frames") {
            o.latency_frames = number();
        } else if (key == "--recompute-ms") {
            o.recompute_ms = static_cast<std::uint32_t>(number());
        } else if (key == "--distinct") {
            o.distinct = number();
        } else if (key == "--raw") {
            o.raw_modes = split(value);
        } else if (key == "--detector") {
            o.detector_modes = split(value);
        } else {
            return false;
        }
    }
    for (const std::string& mode : o.raw_modes) {
        if (mode != "off" && mode != "none" && mode != "lz4" && mode != "bslz4") {
            return false;
        }
    }
    for (const std::string& mode : o.detector_modes) {
        if (mode != "raw" && mode != "lz4" && mode != "bslz4") {
            return false;
        }
    }
    return argc % 2 == 1 && o.frames > 0 && o.rows > 0 && o.cols > 0 && o.reducers > 0 &&
           o.reduce_threads > 0 && o.distinct > 0 && o.recompute_ms > 0;
}

}  // namespace

int run(int argc, char** argv) {
    Options o;
    if (!parse(argc, argv, o)) {
        std::fprintf(stderr,
                     "usage: bench_pipeline [--frames N] [--rows R] [--cols C] [--reducers W] "
                     "[--reduce-threads T] [--latency-fps F] [--latency-frames M] "
                     "[--recompute-ms I] [--distinct D] [--raw off,lz4,bslz4,none] "
                     "[--detector raw,lz4,bslz4]\n");
        return 2;
    }
    spdlog::set_level(spdlog::level::warn);  // the services' per-run lines would bury the table
    // The services' allocator regime (run_service): freed memory trimmed every few seconds.
    const anisoflow::runtime::MemoryTrimmer trimmer(anisoflow::runtime::kMemoryTrimInterval);
    const fs::path dir = fs::temp_directory_path() / ("afbench-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    const anisoflow::geometry::PoniGeometry poni = detector(o);
    const anisoflow::geometry::DetectorGeometry geometry(poni);
    std::fprintf(stderr, "bench_pipeline: simulating %zu + %zu distinct frames...\n", o.distinct,
                 o.distinct);
    const auto simulate_start = Clock::now();
    auto frames = simulate(geometry, o);
    if (!frames) {
        std::fprintf(stderr, "bench_pipeline: simulation failed\n");
        return 1;
    }
    std::fprintf(stderr, "bench_pipeline: simulated in %.1f s; starting the chain\n",
                 std::chrono::duration<double>(Clock::now() - simulate_start).count());
    const pb::RunStart start = run_start("bench", poni, geometry);
    const std::size_t frame_bytes = o.rows * o.cols * sizeof(std::uint16_t);
    const double copy_ms = memcpy_ms(frame_bytes);

    int status = 0;
    std::printf(
        "bench_pipeline: %zux%zu uint16 frames (%.1f MB), %zu reducers x %zu threads, "
        "results every %u ms, %u cores\n",
        o.rows, o.cols, static_cast<double>(frame_bytes) / 1e6, o.reducers, o.reduce_threads,
        o.recompute_ms, std::thread::hardware_concurrency());
    std::printf("  memcpy of one frame: %.3f ms\n", copy_ms);
    const double save_ms = open_run_save_ms(start, dir);
    std::printf(
        "  ingest's state_dir save per dispatched frame: %.3f ms (%.2f x memcpy of a frame)\n",
        save_ms, save_ms / copy_ms);
    std::printf("  %-9s %-12s %10s %14s %12s %10s %10s %14s %6s\n", "detector", "raw archive",
                "frames/s", "x memcpy time", "cpu ms/frame", "p50 ms", "p99 ms", "p99 after 1 s",
                "lost");
    for (const std::string& sent : o.detector_modes) {
        encode_as(*frames, sent);
        if (sent != "raw") {
            std::printf(
                "  (detector sends %s payloads, %.2fx smaller than the pixels; archive "
                "stores them as they came)\n",
                sent.c_str(), compression_ratio(*frames));
        }
        for (const std::string& mode : o.raw_modes) {
            const fs::path run_dir = dir / fmt::format("{}-{}", sent, mode);
            fs::create_directories(run_dir);
            Chain chain(o, run_dir, mode);
            // A short run first: connections, allocations and the first integrator are set up.
            (void)chain.run("bench-warmup", *frames, start, 2, 0.0);
            const double cpu_before = process_cpu_ms();
            const RunFigures fast = chain.run("bench-throughput", *frames, start, o.frames, 0.0);
            const double cpu_ms_per_frame =
                (process_cpu_ms() - cpu_before) / static_cast<double>(fast.sent);
            wait_archived(chain, 2.0);  // the warm-up and the unpaced run
            const std::string metrics_before = chain.metrics();
            const RunFigures paced =
                chain.run("bench-latency", *frames, start, o.latency_frames, o.latency_fps);
            const std::string metrics_after = chain.metrics();
            const double fps =
                fast.seconds > 0.0 ? static_cast<double>(fast.sent) / fast.seconds : 0.0;
            const std::uint64_t lost = (fast.sent - fast.in_final) + (paced.sent - paced.in_final);
            std::printf(
                "  %-9s %-12s %10.1f %14.0f %12.1f %10.1f %10.1f %14.1f %6llu\n", sent.c_str(),
                mode.c_str(), fps, fps > 0.0 ? 1000.0 / fps / copy_ms : 0.0, cpu_ms_per_frame,
                percentile(paced.latency_ms, 0.50), percentile(paced.latency_ms, 0.99),
                percentile(paced.settled_latency_ms, 0.99), static_cast<unsigned long long>(lost));
            std::fflush(stdout);
            print_slowest(paced);
            print_stages(metrics_before, metrics_after);
            if (lost != 0) {
                status = 1;
            }
        }
    }
    std::printf(
        "  (throughput: %zu + %zu frames unpaced, cpu = user + system time of every service per "
        "frame; latency: %zu + %zu frames at %.1f frames/s, frame sent -> first result holding "
        "it)\n",
        o.frames, o.frames, o.latency_frames, o.latency_frames, o.latency_fps);
    fs::remove_all(dir);
    return status;
}

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "bench_pipeline: unexpected failure: %s\n", error.what());
    } catch (...) {
        std::fprintf(stderr, "bench_pipeline: unexpected failure\n");
    }
    return 1;
}
