#pragma once
// An AnalysisResult as JSON: the keys and spellings of `anisoflow analyze`'s SUMMARY.json
// (SPEC 8), so a page, a script and the offline command read the same names; the curves as
// arrays (NaN written as null).

#include <string_view>

#include <nlohmann/json.hpp>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/transport/message.hpp"

namespace anisoflow::live {

namespace pb = ::anisoflow::stream::v1;

/// SPEC 8 labels: "bond-stretching", "bond-rotation", "isotropic", "undetermined", else
/// "unspecified".
std::string_view mechanism_name(pb::Mechanism mechanism);
/// "pn" or "single".
std::string_view mode_name(pb::ExtractionMode mode);
/// "high-Q" or "adhoc".
std::string_view normalisation_name(pb::Normalisation normalisation);

/// The SUMMARY.json keys of a result, plus `frames_received` (the frames analyze counted).
nlohmann::json summary_json(const pb::AnalysisResult& result);

/// The curves of a result message: {"s0": {"x": [...], "value": [...], "variance": [...],
/// "x_name": "q", "x_unit": "1/angstrom", "unit": ""}, "g2": {...}, ...}; only those it carries.
nlohmann::json curves_json(const transport::ResultMessage& message);

/// Columns of Q an image is shown with, at most: a 1000-bin cake is averaged in groups of
/// adjacent cells so a page gets ~100 KB, not ~1 MB, per update.
inline constexpr std::size_t kMaxImageColumns = 250;

/// The first cake image of a result: {"kind": "pn_relative_difference", "unit": "", "q": [...],
/// "chi": [...] (bin centres), "values": [[...] per chi]} with Q averaged down to at most
/// kMaxImageColumns columns (NaN cells left out of a mean; all-NaN groups null); null when the
/// result carries none.
nlohmann::json image_json(const transport::ResultMessage& message);

}  // namespace anisoflow::live
