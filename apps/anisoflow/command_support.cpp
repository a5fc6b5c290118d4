#include "command_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>
#include <toml++/toml.h>
#include <unistd.h>

#include "anisoflow/io/frame_source.hpp"
#include "anisoflow/io/mask.hpp"
#include "anisoflow/reduce/corrections.hpp"

namespace anisoflow::app {

Progress::Progress(std::string what, std::size_t total)
    : what_(std::move(what)), total_(total), live_(isatty(STDERR_FILENO) != 0) {}

void Progress::update(std::size_t done, double ms_per_frame) {
    if (live_) {
        std::fprintf(stderr, "\r%s %zu/%zu (%.1f ms/frame)", what_.c_str(), done, total_,
                     ms_per_frame);
        if (done == total_) {
            std::fputc('\n', stderr);
        }
    } else if (done == total_ || done * 10 / total_ != (done - 1) * 10 / total_) {
        spdlog::info("{} frames={}/{} ms_per_frame={:.1f}", what_, done, total_, ms_per_frame);
    }
}

// Mean of every frame of the given specs (darks, flats), checked against the detector shape.
Result<FrameMean> average_frames(const std::vector<std::string>& specs, FrameShape detector,
                                 const char* what, std::span<const std::uint8_t> mask) {
    auto source = io::open_frame_sources(specs);
    if (!source) {
        return tl::unexpected(source.error());
    }
    if (auto shape = io::check_shape(**source, detector); !shape) {
        return tl::unexpected(shape.error());
    }
    reduce::FrameAverager averager;
    Progress progress(std::string("averaging ") + what, (*source)->frame_count());
    for (std::size_t i = 0; i < (*source)->frame_count(); ++i) {
        auto frame = (*source)->read_frame(i);
        if (!frame) {
            return tl::unexpected(frame.error());
        }
        if (auto added = averager.add(frame->view()); !added) {
            return tl::unexpected(added.error().with_context((*source)->describe()));
        }
        progress.update(i + 1, 0.0);
    }
    auto mean = averager.mean();
    if (!mean) {
        return tl::unexpected(mean.error().with_context(what));
    }
    FrameMean result{std::move(*mean), averager.frame_count(), std::nullopt};
    if (averager.frame_count() >= 2) {
        if (auto variance = averager.mean_pixel_variance(mask); variance) {
            result.pixel_variance_counts2 = *variance;
        }
    }
    return result;
}

Result<reduce::DetectorCorrections> load_detector_corrections(const std::vector<std::string>& darks,
                                                              const std::vector<std::string>& flats,
                                                              const std::string& mask,
                                                              FrameShape detector,
                                                              const NoiseModelOptions& noise) {
    reduce::DetectorCorrections corrections;
    auto model = reduce::parse_variance_model(noise.variance_model);
    if (!model) {
        return tl::unexpected(model.error().with_context("--variance-model"));
    }
    corrections.variance_model = *model;
    corrections.counts_per_photon = noise.counts_per_photon;
    // The mask first: the dark frames' read-noise estimate averages over unmasked pixels only.
    if (!mask.empty()) {
        auto pixels = io::read_mask(mask, detector);
        if (!pixels) {
            return tl::unexpected(pixels.error());
        }
        corrections.mask = std::move(*pixels);
    }
    std::optional<double> dark_variance_counts2;
    if (!darks.empty()) {
        auto dark = average_frames(darks, detector, "darks", corrections.mask);
        if (!dark) {
            return tl::unexpected(dark.error());
        }
        corrections.dark_counts = std::move(dark->mean);
        corrections.dark_frame_count = dark->frame_count;
        dark_variance_counts2 = dark->pixel_variance_counts2;
    }
    if (!flats.empty()) {
        auto flat = average_frames(flats, detector, "flats");
        if (!flat) {
            return tl::unexpected(flat.error());
        }
        corrections.flat = std::move(flat->mean);
    }
    if (corrections.variance_model == reduce::VarianceModel::kIntegrating) {
        if (noise.read_noise_counts) {
            corrections.read_noise_counts = noise.read_noise_counts;
        } else if (dark_variance_counts2) {
            corrections.read_noise_counts = std::sqrt(*dark_variance_counts2);
            spdlog::info("read noise estimated from {} dark frames: {:.4f} counts rms",
                         corrections.dark_frame_count, *corrections.read_noise_counts);
        } else {
            return fail(ErrorCode::kInvalidArgument,
                        "--variance-model integrating needs the read noise: give --read-noise "
                        "COUNTS, or at least 2 dark frames (--dark) to estimate it from ({} "
                        "given)",
                        corrections.dark_frame_count);
        }
        if (!(*corrections.read_noise_counts >= 0.0) ||
            !std::isfinite(*corrections.read_noise_counts)) {
            return fail(ErrorCode::kInvalidArgument,
                        "--read-noise {} is not a finite number of counts >= 0",
                        *corrections.read_noise_counts);
        }
        if (!(noise.counts_per_photon > 0.0) || !std::isfinite(noise.counts_per_photon)) {
            return fail(ErrorCode::kInvalidArgument,
                        "--counts-per-photon {} is not a positive number", noise.counts_per_photon);
        }
    }
    return corrections;
}

void add_noise_model_options(CLI::App& command, NoiseModelOptions& noise) {
    command
        .add_option("--variance-model", noise.variance_model,
                    "pixel variance: poisson (SPEC 2: every count a photon, dark included) or "
                    "integrating (flat panel: dark = offset + read noise, photons above it)")
        ->capture_default_str()
        ->check(CLI::IsMember({"poisson", "integrating"}));
    command.add_option("--read-noise", noise.read_noise_counts,
                       "integrating: read noise of one frame, counts rms (default: estimated "
                       "from 2 or more dark frames)");
    command
        .add_option("--counts-per-photon", noise.counts_per_photon,
                    "integrating: detector counts one photon makes")
        ->capture_default_str();
}

nlohmann::json noise_model_json(const reduce::DetectorCorrections& corrections,
                                const NoiseModelOptions& noise) {
    const bool integrating = corrections.variance_model == reduce::VarianceModel::kIntegrating;
    nlohmann::json from = nullptr;
    if (integrating) {
        from = noise.read_noise_counts
                   ? std::string("given")
                   : fmt::format("dark frames ({})", corrections.dark_frame_count);
    }
    return {
        {"variance_model", std::string(reduce::to_string(corrections.variance_model))},
        {"read_noise_counts", corrections.read_noise_counts
                                  ? nlohmann::json(*corrections.read_noise_counts)
                                  : nlohmann::json(nullptr)},
        {"read_noise_from", from},
        {"counts_per_photon",
         integrating ? nlohmann::json(corrections.counts_per_photon) : nlohmann::json(nullptr)},
    };
}

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

Result<void> check_output_path(const std::string& path, const char* option) {
    const std::filesystem::path file(path);
    const std::filesystem::path parent =
        file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
    std::error_code ec;
    if (!std::filesystem::is_directory(parent, ec)) {
        return fail(ErrorCode::kNotFound, "{} {}: directory {} does not exist", option, path,
                    parent.string());
    }
    if (std::filesystem::is_directory(file, ec)) {
        return fail(ErrorCode::kInvalidArgument, "{} {}: is a directory", option, path);
    }
    return {};
}

Result<std::vector<std::string>> arguments_with_config(const std::vector<std::string>& arguments,
                                                       const CLI::App& subcommand) {
    // Where the subcommand starts, and its --config FILE if any.
    const auto begin = std::find(arguments.begin(), arguments.end(), subcommand.get_name());
    std::string config_path;
    for (auto it = begin; it != arguments.end(); ++it) {
        if (*it == "--config" && it + 1 != arguments.end()) {
            config_path = *(it + 1);
        } else if (it->rfind("--config=", 0) == 0) {
            config_path = it->substr(9);
        }
    }
    if (begin == arguments.end() || config_path.empty()) {
        return arguments;
    }
    toml::table table;
    try {
        table = toml::parse_file(config_path);
    } catch (const toml::parse_error& error) {
        return fail(ErrorCode::kParse, "--config {}: line {}: {}", config_path,
                    error.source().begin.line, error.description());
    }
    std::set<std::string> known;
    std::set<std::string> given;
    for (const CLI::Option* option : subcommand.get_options()) {
        for (const std::string& name : option->get_lnames()) {
            known.insert(name);
        }
    }
    for (auto it = begin; it != arguments.end(); ++it) {
        if (it->rfind("--", 0) == 0) {
            given.insert(it->substr(
                2, it->find('=') == std::string::npos ? std::string::npos : it->find('=') - 2));
        }
    }
    std::vector<std::string> result = arguments;
    for (const auto& entry : table) {
        // Named copies: clang 14 cannot capture structured bindings in lambdas (C++20 allows it).
        const std::string raw_key(entry.first.str());
        const toml::node& node = entry.second;
        std::string key = raw_key;
        std::replace(key.begin(), key.end(), '_', '-');
        if (!known.contains(key) || key == "config" || key == "help") {
            return fail(ErrorCode::kInvalidArgument,
                        "--config {}: unknown key '{}' (keys are the option names of '{}', e.g. "
                        "composition, density, nu, loading-axis-chi, q-max)",
                        config_path, raw_key, subcommand.get_name());
        }
        if (given.contains(key)) {
            continue;  // the command line overrides the file
        }
        const auto scalar = [&](const toml::node& value) -> Result<std::string> {
            if (const auto* text = value.as_string()) {
                return text->get();
            }
            if (const auto* integer = value.as_integer()) {
                return std::to_string(integer->get());
            }
            if (const auto* real = value.as_floating_point()) {
                return fmt::format("{}", real->get());
            }
            return fail(ErrorCode::kInvalidArgument,
                        "--config {}: key '{}' needs a string or number", config_path, raw_key);
        };
        if (const auto* flag = node.as_boolean()) {
            if (flag->get()) {
                result.push_back("--" + key);
            }
            continue;
        }
        result.push_back("--" + key);
        if (const auto* list = node.as_array()) {
            for (const toml::node& element : *list) {
                auto value = scalar(element);
                if (!value) {
                    return tl::unexpected(value.error());
                }
                result.push_back(*value);
            }
            continue;
        }
        auto value = scalar(node);
        if (!value) {
            return tl::unexpected(value.error());
        }
        result.push_back(*value);
    }
    return result;
}

void add_curve_options(CLI::App& command, CurveOptions& curve) {
    command
        .add_option("--curve-certificate", curve.certificate,
                    "CURVE: this side's secret certificate (anisoflow keys DIR NAME writes "
                    "DIR/NAME.key_secret); with --curve-public-keys-dir, on tcp only "
                    "(docs/security.md)")
        ->check(CLI::ExistingFile);
    command
        .add_option("--curve-public-keys-dir", curve.public_keys_dir,
                    "CURVE: directory of trusted public certificates; the server's is "
                    "<host>.key for tcp://<host>:port")
        ->check(CLI::ExistingDirectory);
}

Result<transport::SocketSecurity> load_curve(const CurveOptions& curve) {
    config::v1::Security security;
    security.set_curve_certificate(curve.certificate);
    security.set_curve_public_keys_dir(curve.public_keys_dir);
    auto loaded = transport::SocketSecurity::load(security);
    if (!loaded) {
        // The loader names the service's keys; here they are options.
        return tl::unexpected(
            loaded.error().with_context("--curve-certificate / --curve-public-keys-dir"));
    }
    return std::move(*loaded);
}

}  // namespace anisoflow::app
