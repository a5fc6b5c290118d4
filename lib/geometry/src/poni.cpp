// pyFAI PONI text -> validated PoniGeometry (SPEC 1). The reader mirrors pyFAI's
// io/ponifile.py (split at the first colon, keys case-insensitive) but is stricter: anything it
// cannot honour (parallax, spline distortion, detector orientations 1, 2, 4) is refused with a
// message saying what to do, never silently ignored.

#include "anisoflow/geometry/poni.hpp"

#include <array>
#include <cassert>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace anisoflow::geometry {
namespace {

/// One `key: value` line as read.
struct Entry {
    std::string key;  ///< as written in the file (for messages)
    std::string value;
    std::size_t line = 0;
};

/// Keys of PONI versions 1 to 3 (lower case); anything else is ignored with a warning.
constexpr std::array<std::string_view, 14> kKnownKeys = {
    "poni_version", "detector",   "detector_config",
    "distance",     "poni1",      "poni2",
    "rot1",         "rot2",       "rot3",
    "wavelength",   "pixelsize1", "pixelsize2",
    "splinefile",   "parallax"};

/// Detector_config keys we read, or know to be harmless: module_size only shapes pyFAI's module
/// mask, sensor only matters for parallax (refused through the `Parallax` key).
constexpr std::array<std::string_view, 9> kKnownConfigKeys = {
    "pixel1",     "pixel2",      "max_shape", "orientation", "splineFile",
    "splinefile", "module_size", "sensor",    "binning"};

constexpr int kDefaultOrientation = 3;  // pyFAI's default, equal to the pre-2.1 convention

/// Relative tolerance when deciding that Detector_config pixel sizes are a binning of a model's.
constexpr double kBinningRelativeTolerance = 1e-9;

std::string_view trim(std::string_view text) {
    constexpr std::string_view kSpace = " \t\r\n\f\v";
    const auto first = text.find_first_not_of(kSpace);
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(kSpace);
    return text.substr(first, last - first + 1);
}

std::string to_lower(std::string_view text) {
    std::string lower(text);
    for (char& c : lower) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return lower;
}

template <std::size_t N>
bool contains(const std::array<std::string_view, N>& names, std::string_view name) {
    for (const std::string_view known : names) {
        if (known == name) {
            return true;
        }
    }
    return false;
}

/// The whole text must be one number (std::from_chars: no leading '+', no trailing junk).
std::optional<double> to_double(std::string_view text) {
    double value = 0.0;
    const char* const end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc{} || ptr != end) {
        return std::nullopt;
    }
    return value;
}

using Entries = std::map<std::string, Entry, std::less<>>;

/// Reads the lines into entries keyed by lower-case key; collects unknown-key warnings.
Result<Entries> read_entries(std::string_view text, std::vector<std::string>& warnings) {
    Entries entries;
    std::size_t line_number = 0;
    std::size_t start = 0;
    while (start <= text.size()) {
        const auto newline = text.find('\n', start);
        const auto length =
            newline == std::string_view::npos ? text.size() - start : newline - start;
        const std::string_view raw = text.substr(start, length);
        start += length + 1;
        ++line_number;

        const std::string_view line = trim(raw);
        if (line.empty() || line.front() == '#') {
            continue;
        }
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) {
            return fail(ErrorCode::kParse, "PONI line {}: expected 'key: value', got '{}'",
                        line_number, line);
        }
        const std::string_view key = trim(line.substr(0, colon));
        const std::string_view value = trim(line.substr(colon + 1));
        if (key.empty()) {
            return fail(ErrorCode::kParse, "PONI line {}: no key before the colon in '{}'",
                        line_number, line);
        }
        std::string lower_key = to_lower(key);
        if (const auto it = entries.find(lower_key); it != entries.end()) {
            return fail(ErrorCode::kParse,
                        "PONI key '{}' appears twice, on lines {} and {}; keep one of them",
                        it->second.key, it->second.line, line_number);
        }
        if (!contains(kKnownKeys, lower_key)) {
            warnings.push_back(
                fmt::format("unknown key '{}' on line {} ignored", key, line_number));
        }
        entries.emplace(std::move(lower_key),
                        Entry{std::string(key), std::string(value), line_number});
    }
    return entries;
}

const Entry* find_entry(const Entries& entries, std::string_view lower_key) {
    const auto it = entries.find(lower_key);
    return it == entries.end() ? nullptr : &it->second;
}

Result<std::string> check_version(const Entries& entries) {
    const Entry* entry = find_entry(entries, "poni_version");
    if (entry == nullptr) {
        return std::string("1");
    }
    const std::optional<double> number = to_double(entry->value);
    if (!number || (*number != 1.0 && *number != 2.0 && *number != 2.1 && *number != 3.0)) {
        return fail(ErrorCode::kUnsupported,
                    "PONI line {}: poni_version '{}' is not supported (anisoflow reads versions "
                    "1, 2, 2.1 and 3)",
                    entry->line, entry->value);
    }
    return entry->value;
}

Result<void> check_parallax(const Entries& entries) {
    const Entry* entry = find_entry(entries, "parallax");
    if (entry == nullptr) {
        return {};
    }
    const std::string value = to_lower(entry->value);
    if (value == "false" || value == "0") {
        return {};
    }
    if (value == "true" || value == "1") {
        return fail(ErrorCode::kUnsupported,
                    "PONI line {}: '{}: {}' asks for parallax correction, which anisoflow does not "
                    "implement; refine the geometry in pyFAI with parallax correction switched "
                    "off and save the PONI again (it then reads 'Parallax: False'); deleting the "
                    "line instead would leave a geometry refined for a different model",
                    entry->line, entry->key, entry->value);
    }
    return fail(ErrorCode::kParse, "PONI line {}: {} must be True or False, got '{}'", entry->line,
                entry->key, entry->value);
}

Result<void> check_spline(std::size_t line, std::string_view key, std::string_view value) {
    if (value.empty() || to_lower(value) == "none") {
        return {};
    }
    return fail(ErrorCode::kUnsupported,
                "PONI line {}: {} '{}' asks for spline distortion correction, which anisoflow "
                "does not implement; use a calibration without a spline file",
                line, key, value);
}

/// A required number: missing -> kNotFound, not a number -> kParse, not finite (or not > 0
/// when `positive`) -> kInvalidArgument; every message names the key.
Result<double> required_number(const Entries& entries, std::string_view lower_key,
                               std::string_view name, bool positive, std::string_view unit) {
    const Entry* entry = find_entry(entries, lower_key);
    if (entry == nullptr) {
        return fail(ErrorCode::kNotFound, "PONI has no '{}' line; it is required", name);
    }
    const std::optional<double> value = to_double(entry->value);
    if (!value) {
        return fail(ErrorCode::kParse, "PONI line {}: {} value '{}' is not a number", entry->line,
                    name, entry->value);
    }
    if (!std::isfinite(*value) || (positive && !(*value > 0.0))) {
        return fail(ErrorCode::kInvalidArgument,
                    "PONI line {}: {} must be a {}finite number ({}), got {}", entry->line, name,
                    positive ? "positive " : "", unit, entry->value);
    }
    return *value;
}

/// One pixel size with the place it came from, for messages.
struct PixelSize {
    double value_m = 0.0;
    std::string source;  ///< e.g. "Detector_config pixel1 (line 5)"
};

Result<void> check_pixel_size(const PixelSize& pixel) {
    if (!std::isfinite(pixel.value_m) || !(pixel.value_m > 0.0)) {
        return fail(ErrorCode::kInvalidArgument,
                    "PONI {} must be a positive finite pixel size in metres, got {}", pixel.source,
                    pixel.value_m);
    }
    return {};
}

/// What Detector_config and the PixelSize keys say about the detector.
struct DetectorFacts {
    std::optional<PixelSize> pixel1;
    std::optional<PixelSize> pixel2;
    std::optional<FrameShape> max_shape;
};

Result<void> read_config_pixel(const nlohmann::json& config, const char* key, std::size_t line,
                               std::optional<PixelSize>& out) {
    const auto it = config.find(key);
    if (it == config.end() || it->is_null()) {
        return {};
    }
    if (!it->is_number()) {
        return fail(ErrorCode::kParse, "PONI line {}: Detector_config {} must be a number, got {}",
                    line, key, it->dump());
    }
    out = PixelSize{it->get<double>(), fmt::format("Detector_config {} (line {})", key, line)};
    return {};
}

Result<void> read_config_shape(const nlohmann::json& config, std::size_t line,
                               std::optional<FrameShape>& out) {
    const auto it = config.find("max_shape");
    if (it == config.end() || it->is_null()) {
        return {};
    }
    const auto positive_integer = [](const nlohmann::json& v) {
        return v.is_number_integer() && v.get<long long>() > 0;
    };
    if (!it->is_array() || it->size() != 2 || !positive_integer((*it)[0]) ||
        !positive_integer((*it)[1])) {
        return fail(
            ErrorCode::kInvalidArgument,
            "PONI line {}: Detector_config max_shape must be [rows, cols] with two positive "
            "integers, got {}",
            line, it->dump());
    }
    out = FrameShape{(*it)[0].get<std::size_t>(), (*it)[1].get<std::size_t>()};
    return {};
}

Result<void> check_orientation(const nlohmann::json& config, std::size_t line) {
    const auto it = config.find("orientation");
    if (it == config.end() || it->is_null()) {
        return {};  // absent: the pre-2.1 convention, which orientation 3 equals
    }
    if (it->is_number_integer()) {
        const long long orientation = it->get<long long>();
        if (orientation == kDefaultOrientation) {
            return {};
        }
        if (orientation == 1 || orientation == 2 || orientation == 4) {
            return fail(ErrorCode::kUnsupported,
                        "PONI line {}: detector orientation {} is not supported: the meaning of "
                        "orientations 1, 2 and 4 changed between pyFAI releases in 2026, so the "
                        "file does not say which convention it follows; re-export the calibration "
                        "with orientation 3 (pyFAI's default and historical convention), e.g. "
                        "recalibrate with orientation 3 or transform the PONI to orientation 3 in "
                        "pyFAI",
                        line, orientation);
        }
    }
    return fail(ErrorCode::kInvalidArgument,
                "PONI line {}: Detector_config orientation must be 3 (pyFAI's default), got {}",
                line, it->dump());
}

Result<void> read_detector_config(const Entry& entry, DetectorFacts& facts,
                                  std::vector<std::string>& warnings) {
    const nlohmann::json config =
        nlohmann::json::parse(entry.value, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded()) {
        return fail(ErrorCode::kParse, "PONI line {}: {} is not valid JSON: '{}'", entry.line,
                    entry.key, entry.value);
    }
    if (config.is_null()) {
        return {};
    }
    if (!config.is_object()) {
        return fail(ErrorCode::kParse, "PONI line {}: {} must be a JSON object, got '{}'",
                    entry.line, entry.key, entry.value);
    }
    for (const auto& [key, value] : config.items()) {
        if (!contains(kKnownConfigKeys, key)) {
            warnings.push_back(fmt::format("unknown Detector_config key '{}' on line {} ignored",
                                           key, entry.line));
        }
    }
    if (auto ok = check_orientation(config, entry.line); !ok) {
        return ok;
    }
    for (const char* spline_key : {"splineFile", "splinefile"}) {
        const auto it = config.find(spline_key);
        if (it == config.end() || it->is_null()) {
            continue;
        }
        const std::string value = it->is_string() ? it->get<std::string>() : it->dump();
        if (auto ok =
                check_spline(entry.line, fmt::format("Detector_config {}", spline_key), value);
            !ok) {
            return ok;
        }
    }
    if (const auto it = config.find("binning");
        it != config.end() && !it->is_null() && *it != nlohmann::json::array({1, 1})) {
        return fail(ErrorCode::kUnsupported,
                    "PONI line {}: Detector_config binning {} is not implemented; give the binned "
                    "pixel1, pixel2 and max_shape instead",
                    entry.line, it->dump());
    }
    if (auto ok = read_config_pixel(config, "pixel1", entry.line, facts.pixel1); !ok) {
        return ok;
    }
    if (auto ok = read_config_pixel(config, "pixel2", entry.line, facts.pixel2); !ok) {
        return ok;
    }
    return read_config_shape(config, entry.line, facts.max_shape);
}

/// PixelSize1/PixelSize2 (version 1, accepted in any version) next to Detector_config's.
Result<void> read_pixel_size_key(const Entries& entries, std::string_view lower_key,
                                 std::string_view name, std::optional<PixelSize>& from_config) {
    const Entry* entry = find_entry(entries, lower_key);
    if (entry == nullptr) {
        return {};
    }
    const std::optional<double> value = to_double(entry->value);
    if (!value) {
        return fail(ErrorCode::kParse, "PONI line {}: {} value '{}' is not a number", entry->line,
                    name, entry->value);
    }
    if (from_config && from_config->value_m != *value) {
        return fail(ErrorCode::kInvalidArgument,
                    "PONI line {}: {} {} disagrees with {} = {}; keep one of them", entry->line,
                    name, entry->value, from_config->source, from_config->value_m);
    }
    if (!from_config) {
        from_config = PixelSize{*value, fmt::format("{} (line {})", name, entry->line)};
    }
    return {};
}

/// k when `pixel_m` is k times `model_pixel_m` (k >= 1 integer), i.e. a k x k binning, and k
/// leaves at least one binned pixel of the model's `model_pixels`: a larger factor would give a
/// detector of no rows (or columns), which no PONI describes (and k would not fit a size_t).
std::optional<std::size_t> binning_factor(double pixel_m, double model_pixel_m,
                                          std::size_t model_pixels) {
    const double ratio = pixel_m / model_pixel_m;
    const double k = std::round(ratio);
    if (!(k >= 1.0) || k > static_cast<double>(model_pixels) ||
        std::abs(k * model_pixel_m - pixel_m) > kBinningRelativeTolerance * pixel_m) {
        return std::nullopt;
    }
    return static_cast<std::size_t>(k);
}

std::string model_hint() {
    return fmt::format("known models: {}", fmt::join(known_detector_models(), ", "));
}

/// Combines Detector_config / PixelSize facts with the model table (SPEC 1): explicit values win,
/// the table fills what the file leaves out.
Result<DetectorModel> resolve_detector(const Entries& entries, DetectorFacts facts) {
    const Entry* detector_entry = find_entry(entries, "detector");
    const std::string name = detector_entry == nullptr ? std::string() : detector_entry->value;
    const std::string shown_name =
        detector_entry == nullptr ? std::string("(no Detector line)") : fmt::format("'{}'", name);

    if (facts.pixel1.has_value() != facts.pixel2.has_value()) {
        const PixelSize& given = facts.pixel1 ? *facts.pixel1 : *facts.pixel2;
        return fail(ErrorCode::kNotFound, "PONI gives {} but not the other pixel size ({})",
                    given.source, facts.pixel1 ? "pixel2 / PixelSize2" : "pixel1 / PixelSize1");
    }
    for (const auto& pixel : {facts.pixel1, facts.pixel2}) {
        if (pixel) {
            if (auto ok = check_pixel_size(*pixel); !ok) {
                return tl::unexpected(ok.error());
            }
        }
    }

    if (facts.pixel1 && facts.max_shape) {
        return DetectorModel{detector_entry == nullptr ? std::string("Detector") : name,
                             facts.pixel1->value_m, facts.pixel2->value_m, *facts.max_shape};
    }

    Result<DetectorModel> model = find_detector_model(name);
    if (!facts.pixel1) {
        if (!model) {
            return fail(ErrorCode::kNotFound,
                        "PONI detector {} gives no pixel sizes and is not a known detector model "
                        "({}); give \"pixel1\", \"pixel2\" (m) and \"max_shape\" [rows, cols] in "
                        "Detector_config",
                        shown_name, model_hint());
        }
        if (facts.max_shape) {
            model->max_shape = *facts.max_shape;
        }
        return model;
    }

    // Pixel sizes given, max_shape missing: only a known model can supply the shape.
    if (!model) {
        return fail(
            ErrorCode::kNotFound,
            "PONI detector {} has pixel sizes but no max_shape, and is not a known detector "
            "model ({}); add \"max_shape\": [rows, cols] to Detector_config (version 1 "
            "files carry no shape: name a known Detector or re-export as PONI 2.1)",
            shown_name, model_hint());
    }
    const auto bin1 = binning_factor(facts.pixel1->value_m, model->pixel1_m, model->max_shape.rows);
    const auto bin2 = binning_factor(facts.pixel2->value_m, model->pixel2_m, model->max_shape.cols);
    if (!bin1 || !bin2) {
        return fail(ErrorCode::kNotFound,
                    "PONI detector {} has no max_shape and its pixel size {} x {} m is not a "
                    "binning of the {} model's {} x {} m; add \"max_shape\": [rows, cols] to "
                    "Detector_config",
                    shown_name, facts.pixel1->value_m, facts.pixel2->value_m, model->name,
                    model->pixel1_m, model->pixel2_m);
    }
    // pyFAI's binned shape is the unbinned one divided by the binning, rounded down.
    return DetectorModel{model->name, facts.pixel1->value_m, facts.pixel2->value_m,
                         FrameShape{model->max_shape.rows / *bin1, model->max_shape.cols / *bin2}};
}

}  // namespace

Result<PoniParseOutput> parse_poni(std::string_view text) {
    PoniParseOutput output;
    Result<Entries> read = read_entries(text, output.warnings);
    if (!read) {
        return tl::unexpected(read.error());
    }
    const Entries& entries = *read;

    Result<std::string> version = check_version(entries);
    if (!version) {
        return tl::unexpected(version.error());
    }
    output.geometry.poni_version = *version;

    if (auto ok = check_parallax(entries); !ok) {
        return tl::unexpected(ok.error());
    }
    if (const Entry* spline = find_entry(entries, "splinefile"); spline != nullptr) {
        if (auto ok = check_spline(spline->line, spline->key, spline->value); !ok) {
            return tl::unexpected(ok.error());
        }
    }

    struct Required {
        std::string_view lower_key;
        std::string_view name;
        bool positive;
        std::string_view unit;
        double* target;
    };
    PoniGeometry& g = output.geometry;
    const std::array<Required, 7> required = {{
        {"distance", "Distance", true, "metres", &g.distance_m},
        {"poni1", "Poni1", false, "metres", &g.poni1_m},
        {"poni2", "Poni2", false, "metres", &g.poni2_m},
        {"rot1", "Rot1", false, "radians", &g.rot1_rad},
        {"rot2", "Rot2", false, "radians", &g.rot2_rad},
        {"rot3", "Rot3", false, "radians", &g.rot3_rad},
        {"wavelength", "Wavelength", true, "metres", &g.wavelength_m},
    }};
    for (const Required& r : required) {
        Result<double> value = required_number(entries, r.lower_key, r.name, r.positive, r.unit);
        if (!value) {
            return tl::unexpected(value.error());
        }
        *r.target = *value;
    }

    DetectorFacts facts;
    if (const Entry* config = find_entry(entries, "detector_config"); config != nullptr) {
        if (auto ok = read_detector_config(*config, facts, output.warnings); !ok) {
            return tl::unexpected(ok.error());
        }
    }
    if (auto ok = read_pixel_size_key(entries, "pixelsize1", "PixelSize1", facts.pixel1); !ok) {
        return tl::unexpected(ok.error());
    }
    if (auto ok = read_pixel_size_key(entries, "pixelsize2", "PixelSize2", facts.pixel2); !ok) {
        return tl::unexpected(ok.error());
    }
    Result<DetectorModel> detector = resolve_detector(entries, std::move(facts));
    if (!detector) {
        return tl::unexpected(detector.error());
    }
    g.detector = std::move(*detector);
    return output;
}

std::string format_poni(const PoniGeometry& geometry) {
    const DetectorModel& d = geometry.detector;
    assert(d.name.find('\n') == std::string::npos && "a detector name cannot span lines");
    // "{}" is fmt's shortest round-trip form (what Python's repr writes, so files look like
    // pyFAI's): parse_poni reads back the identical double, as {:.17g} would, but without the
    // 0.00020000000000000001 noise.
    return fmt::format(
        "# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis\n"
        "# Written by anisoflow\n"
        "poni_version: 2.1\n"
        "Detector: {}\n"
        "Detector_config: {{\"pixel1\": {}, \"pixel2\": {}, \"max_shape\": [{}, {}], "
        "\"orientation\": {}}}\n"
        "Distance: {}\n"
        "Poni1: {}\n"
        "Poni2: {}\n"
        "Rot1: {}\n"
        "Rot2: {}\n"
        "Rot3: {}\n"
        "Wavelength: {}\n",
        d.name, d.pixel1_m, d.pixel2_m, d.max_shape.rows, d.max_shape.cols, kDefaultOrientation,
        geometry.distance_m, geometry.poni1_m, geometry.poni2_m, geometry.rot1_rad,
        geometry.rot2_rad, geometry.rot3_rad, geometry.wavelength_m);
}

}  // namespace anisoflow::geometry
