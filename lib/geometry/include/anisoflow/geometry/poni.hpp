#pragma once
// pyFAI PONI calibration files (SPEC 1): parsing text into a validated geometry. No file access
// here (lib/io reads files); parse errors name the line or key at fault.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "anisoflow/core/frame.hpp"
#include "anisoflow/core/result.hpp"

namespace anisoflow::geometry {

/// Pixel size and shape of an area detector, from a PONI's Detector_config or the model table.
struct DetectorModel {
    std::string name;       ///< e.g. "Perkin", "Pilatus1M", or "Detector" for a generic one
    double pixel1_m = 0.0;  ///< pixel size along dim1 (rows), metres
    double pixel2_m = 0.0;  ///< pixel size along dim2 (columns), metres
    FrameShape max_shape;   ///< rows, cols
};

/// Looks up a detector model by the name pyFAI writes in `Detector:` (case-insensitive, aliases
/// accepted). Error names the model and lists the known ones.
Result<DetectorModel> find_detector_model(std::string_view name);

/// The names find_detector_model() accepts (canonical names only), for help texts.
std::vector<std::string> known_detector_models();

/// The calibrated geometry of one PONI file, in pyFAI's conventions (SPEC 1).
struct PoniGeometry {
    std::string poni_version;  ///< "1", "2", "2.1" as written in the file ("1" when absent)
    DetectorModel detector;
    double distance_m = 0.0;  ///< sample to PONI along the detector normal
    double poni1_m = 0.0;     ///< PONI coordinate along dim1
    double poni2_m = 0.0;     ///< PONI coordinate along dim2
    double rot1_rad = 0.0;
    double rot2_rad = 0.0;
    double rot3_rad = 0.0;
    double wavelength_m = 0.0;
};

struct PoniParseOutput {
    PoniGeometry geometry;
    std::vector<std::string> warnings;  ///< e.g. unknown keys that were ignored
};

/// Parses the text of a PONI file. Versions 1, 2 and 2.1 (and 3 without parallax) are read;
/// `Parallax: True`, detector orientations 1, 2 and 4, unknown detector models, missing or
/// non-numeric required keys and non-positive distance/wavelength/pixel sizes are errors whose
/// message names the key or line.
Result<PoniParseOutput> parse_poni(std::string_view text);

/// Writes a PONI 2.1 text that parse_poni() reads back to the same geometry (used by the
/// simulator and in output metadata).
std::string format_poni(const PoniGeometry& geometry);

}  // namespace anisoflow::geometry
