#pragma once
// The outputs of `anisoflow analyze` (SPEC 8; layout in docs/io.md, "Analysis file"): RESULT.h5,
// a NeXus file with S0/S2, g0/g2/G, the affine analysis, the cakes and the full configuration,
// and PDFgetX3-style text files of one r curve that PDFgui and friends read.

#include <cstddef>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "anisoflow/core/result.hpp"
#include "anisoflow/physics/anisotropy_analysis.hpp"
#include "anisoflow/physics/curves.hpp"
#include "anisoflow/reduce/cake.hpp"

namespace anisoflow::io {

/// The paper normalisation (SPEC 4), stated in RESULT.h5 as /entry/structure@normalisation.
inline constexpr std::string_view kPaperNormalisation =
    "paper: S(Q,psi) = S0 + sqrt5 S2 P2(cos psi)";

/// Provenance written to /entry/process and /entry/results.
struct AnalysisFileInfo {
    std::string program_version;
    std::string poni_text;           ///< the PONI file as read
    std::string configuration_json;  ///< the full configuration used (SPEC 8 keys), JSON text
    std::vector<std::string> sources_p, sources_n, sources_dark;  ///< frame specs as given
    std::size_t n_frames_p = 0, n_frames_n = 0;
    double nu = std::numeric_limits<double>::quiet_NaN();  ///< Poisson ratio used (SPEC 7)
};

/// Writes RESULT.h5 (docs/io.md, "Analysis file"). `cake_n` is null in single mode (no
/// /entry/cakes/n then). The file is written under a temporary name beside `path` and renamed
/// when complete, so `path` never holds a half-written file; an existing file is replaced.
/// Errors (kInvalidArgument for curves or cakes of inconsistent lengths, kIo for HDF5 or file
/// system failures) start with `path`.
Result<void> write_analysis_file(const std::filesystem::path& path,
                                 const physics::AnisotropyResult& result,
                                 const reduce::Cake& cake_p, const reduce::Cake* cake_n,
                                 const AnalysisFileInfo& info);

/// Writes one r curve as a PDFgetX3-style .gr text: `# <line>` per header line, then
/// `#### start data`, `#S 1`, `#L r($\AA$)  G($\AA^{-2}$)` (for units "A^-2"; `g0(r)` when
/// `units` is empty), then `r value` rows (`%.6f %.8e`); rows with a NaN are skipped.
/// `quantity` is "G", "g0" or "g2". Errors start with `path`.
Result<void> write_pdf_text(const std::filesystem::path& path, const physics::RCurve& curve,
                            std::string_view quantity, std::string_view units,
                            const std::vector<std::string>& header_lines);

}  // namespace anisoflow::io
