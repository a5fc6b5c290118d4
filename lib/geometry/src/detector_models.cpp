// Area detectors of high-energy beamlines that a PONI may name instead of giving pixel sizes
// (SPEC 1). Why a table and where each number comes from: docs/adr/0003-detector-model-table.md.

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "anisoflow/geometry/poni.hpp"

namespace anisoflow::geometry {
namespace {

constexpr std::size_t kMaxAliases = 5;

struct ModelRow {
    std::string_view name;  ///< canonical: the class name pyFAI writes after `Detector:`
    double pixel1_m;
    double pixel2_m;
    std::size_t rows;
    std::size_t cols;
    std::array<std::string_view, kMaxAliases> aliases;  ///< unused slots stay empty
};

// pyFAI references are silx-kit/pyFAI, src/pyFAI/detectors/<file>.py, class <name>: its default
// pixel size (constructor arguments) and MAX_SHAPE, and its `aliases` list.
constexpr std::array kModels = {
    // Flat panels (scintillator + amorphous silicon or CMOS).
    // _others.py, class Perkin: 200e-6 m pixels; MAX_SHAPE (4096, 4096) is a virtual 100 um grid,
    // at the default 200 um (binning 2x2) pyFAI's shape is (2048, 2048) = XRD 1621 data sheet.
    ModelRow{"Perkin",
             200e-6,
             200e-6,
             2048,
             2048,
             {"Perkin detector", "Perkin Elmer", "PerkinElmer XRD 1621", "XRD 1621"}},
    // Not in pyFAI (pyFAI writes such a panel as a generic `Detector` with a Detector_config).
    // Varex Imaging XRD 4343CT data sheet: 150 um pitch, 2880 x 2880 pixels (432 x 432 mm).
    ModelRow{"Varex4343CT",
             150e-6,
             150e-6,
             2880,
             2880,
             {"Varex XRD 4343CT", "XRD 4343CT", "Varex 4343"}},
    // _others.py, class Dexela2923: 75e-6 m pixels, MAX_SHAPE (3888, 3072).
    ModelRow{"Dexela2923", 75e-6, 75e-6, 3888, 3072, {"Dexela 2923"}},
    // _others.py, class Pixium: default 308e-6 m pixels = 2x2 binning of the 154 um native grid
    // MAX_SHAPE (1910, 2480), so pyFAI's default shape is (955, 1240).
    ModelRow{"Pixium",
             308e-6,
             308e-6,
             955,
             1240,
             {"Pixium 4700", "Pixium 4700 detector", "Thales Electronics"}},

    // Dectris Pilatus, Si sensor: _dectris.py, class Pilatus: 172e-6 m pixels.
    ModelRow{"Pilatus300k", 172e-6, 172e-6, 619, 487, {"Pilatus 300k"}},  // MAX_SHAPE (619, 487)
    ModelRow{"Pilatus1M", 172e-6, 172e-6, 1043, 981, {"Pilatus 1M"}},     // MAX_SHAPE (1043, 981)
    ModelRow{"Pilatus2M", 172e-6, 172e-6, 1679, 1475, {"Pilatus 2M"}},    // MAX_SHAPE 1679, 1475
    ModelRow{"Pilatus6M", 172e-6, 172e-6, 2527, 2463, {"Pilatus 6M"}},    // MAX_SHAPE (2527, 2463)

    // Dectris Pilatus CdTe: _dectris.py, class PilatusCdTe(Pilatus): 172e-6 m pixels.
    ModelRow{"PilatusCdTe300k",
             172e-6,
             172e-6,
             619,
             487,  // MAX_SHAPE (619, 487)
             {"Pilatus CdTe 300k", "Pilatus 300k CdTe", "Pilatus300k CdTe"}},
    ModelRow{"PilatusCdTe300kw",
             172e-6,
             172e-6,
             195,
             1475,  // MAX_SHAPE (195, 1475)
             {"Pilatus CdTe 300kw", "Pilatus 300kw CdTe", "Pilatus300kw CdTe"}},
    ModelRow{"PilatusCdTe900kw",
             172e-6,
             172e-6,
             195,
             4439,  // MAX_SHAPE (195, 4439)
             {"Pilatus CdTe 900kw", "Pilatus 900kw CdTe", "Pilatus900kw CdTe"}},
    ModelRow{"PilatusCdTe1M",
             172e-6,
             172e-6,
             1043,
             981,  // MAX_SHAPE (1043, 981)
             {"Pilatus CdTe 1M", "Pilatus 1M CdTe", "Pilatus1M CdTe"}},
    ModelRow{"PilatusCdTe2M",
             172e-6,
             172e-6,
             1679,
             1475,  // MAX_SHAPE 1679, 1475
             {"Pilatus CdTe 2M", "Pilatus 2M CdTe", "Pilatus2M CdTe"}},

    // Dectris Eiger2 CdTe: _dectris.py, class Eiger2CdTe(Eiger2(Eiger)): 75e-6 m pixels.
    ModelRow{"Eiger2CdTe_500k", 75e-6, 75e-6, 512, 1028, {"Eiger2 CdTe 500k"}},  // (512, 1028)
    ModelRow{"Eiger2CdTe_1M", 75e-6, 75e-6, 1062, 1028, {"Eiger2 CdTe 1M"}},     // (1062, 1028)
    ModelRow{"Eiger2CdTe_1MW", 75e-6, 75e-6, 512, 2068, {"Eiger2 CdTe 1M-W"}},   // (512, 2068)
    ModelRow{"Eiger2CdTe_2MW", 75e-6, 75e-6, 512, 4148, {"Eiger2 CdTe 2M-W"}},   // (512, 4148)
    ModelRow{"Eiger2CdTe_4M", 75e-6, 75e-6, 2162, 2068, {"Eiger2 CdTe 4M"}},     // (2162, 2068)
    ModelRow{"Eiger2CdTe_9M", 75e-6, 75e-6, 3262, 3108, {"Eiger2 CdTe 9M"}},     // (3262, 3108)
    ModelRow{"Eiger2CdTe_16M", 75e-6, 75e-6, 4362, 4148, {"Eiger2 CdTe 16M"}},   // (4362, 4148)
};

constexpr bool is_separator(char c) { return c == ' ' || c == '_' || c == '-' || c == '\t'; }

constexpr char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

/// pyFAI registers lower-cased names with spaces removed or turned into underscores; we go one
/// step further and compare ignoring ASCII case, spaces, underscores and dashes, so
/// "Eiger2 CdTe 1M-W", "Eiger2CdTe_1MW" and "eiger2-cdte-1mw" all name the same row.
constexpr bool same_model_name(std::string_view a, std::string_view b) {
    std::size_t i = 0;
    std::size_t j = 0;
    while (true) {
        while (i < a.size() && is_separator(a[i])) {
            ++i;
        }
        while (j < b.size() && is_separator(b[j])) {
            ++j;
        }
        if (i == a.size() || j == b.size()) {
            return i == a.size() && j == b.size();
        }
        if (lower(a[i]) != lower(b[j])) {
            return false;
        }
        ++i;
        ++j;
    }
}

constexpr bool row_matches(const ModelRow& row, std::string_view name) {
    if (same_model_name(row.name, name)) {
        return true;
    }
    for (const std::string_view& alias : row.aliases) {
        if (!alias.empty() && same_model_name(alias, name)) {
            return true;
        }
    }
    return false;
}

/// True when no name or alias of one row also names another row (lookups are unambiguous).
constexpr bool names_are_unambiguous() {
    for (std::size_t r = 0; r < kModels.size(); ++r) {
        for (std::size_t other = 0; other < kModels.size(); ++other) {
            if (other == r) {
                continue;
            }
            if (row_matches(kModels[other], kModels[r].name)) {
                return false;
            }
            for (const std::string_view& alias : kModels[r].aliases) {
                if (!alias.empty() && row_matches(kModels[other], alias)) {
                    return false;
                }
            }
        }
    }
    return true;
}
static_assert(names_are_unambiguous(), "two detector model rows share a (normalised) name");

}  // namespace

Result<DetectorModel> find_detector_model(std::string_view name) {
    for (const ModelRow& row : kModels) {
        if (row_matches(row, name)) {
            return DetectorModel{std::string(row.name), row.pixel1_m, row.pixel2_m,
                                 FrameShape{row.rows, row.cols}};
        }
    }
    return fail(ErrorCode::kNotFound,
                "unknown detector model '{}' (known models: {}; names are matched ignoring case, "
                "spaces, underscores and dashes)",
                name, fmt::join(known_detector_models(), ", "));
}

std::vector<std::string> known_detector_models() {
    std::vector<std::string> names;
    names.reserve(kModels.size());
    for (const ModelRow& row : kModels) {
        names.emplace_back(row.name);
    }
    return names;
}

}  // namespace anisoflow::geometry
