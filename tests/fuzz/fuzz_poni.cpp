// libFuzzer target: geometry::parse_poni(), the PONI calibration text an operator hands to
// ingest (docs/fuzzing.md). An accepted geometry must survive format_poni() -> parse_poni()
// unchanged, as poni.hpp promises.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "anisoflow/geometry/poni.hpp"

namespace {

bool same(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

}  // namespace

// libFuzzer's entry point, named by libFuzzer.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace anisoflow;  // NOLINT(google-build-using-namespace)
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto parsed = geometry::parse_poni(text);
    if (!parsed) {
        return 0;
    }
    const geometry::PoniGeometry& g = parsed->geometry;
    auto again = geometry::parse_poni(geometry::format_poni(g));
    if (!again) {
        __builtin_trap();  // format_poni wrote what parse_poni refuses
    }
    const geometry::PoniGeometry& h = again->geometry;
    if (!same(g.distance_m, h.distance_m) || !same(g.poni1_m, h.poni1_m) ||
        !same(g.poni2_m, h.poni2_m) || !same(g.rot1_rad, h.rot1_rad) ||
        !same(g.rot2_rad, h.rot2_rad) || !same(g.rot3_rad, h.rot3_rad) ||
        !same(g.wavelength_m, h.wavelength_m) || !same(g.detector.pixel1_m, h.detector.pixel1_m) ||
        !same(g.detector.pixel2_m, h.detector.pixel2_m) ||
        g.detector.max_shape != h.detector.max_shape) {
        __builtin_trap();  // the round trip changed the geometry
    }
    return 0;
}
