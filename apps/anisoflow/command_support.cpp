#include "command_support.hpp"

#include <algorithm>
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
Result<std::pair<std::vector<float>, std::size_t>> average_frames(
    const std::vector<std::string>& specs, FrameShape detector, const char* what) {
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
    return std::make_pair(std::move(*mean), averager.frame_count());
}

Result<reduce::DetectorCorrections> load_detector_corrections(const std::vector<std::string>& darks,
                                                              const std::vector<std::string>& flats,
                                                              const std::string& mask,
                                                              FrameShape detector) {
    reduce::DetectorCorrections corrections;
    if (!darks.empty()) {
        auto dark = average_frames(darks, detector, "darks");
        if (!dark) {
            return tl::unexpected(dark.error());
        }
        corrections.dark_counts = std::move(dark->first);
        corrections.dark_frame_count = dark->second;
    }
    if (!flats.empty()) {
        auto flat = average_frames(flats, detector, "flats");
        if (!flat) {
            return tl::unexpected(flat.error());
        }
        corrections.flat = std::move(flat->first);
    }
    if (!mask.empty()) {
        auto pixels = io::read_mask(mask, detector);
        if (!pixels) {
            return tl::unexpected(pixels.error());
        }
        corrections.mask = std::move(*pixels);
    }
    return corrections;
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

}  // namespace anisoflow::app
