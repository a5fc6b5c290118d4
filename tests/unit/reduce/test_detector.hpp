#pragma once
// A small untilted test detector, so integrator tests run in milliseconds.

#include "anisoflow/geometry/detector_geometry.hpp"

namespace anisoflow::reduce::test {

inline geometry::PoniGeometry small_detector_poni(std::size_t rows = 96, std::size_t cols = 128) {
    geometry::PoniGeometry poni;
    poni.poni_version = "2.1";
    poni.detector = geometry::DetectorModel{"Detector", 200e-6, 200e-6, FrameShape{rows, cols}};
    poni.distance_m = 0.05;
    poni.poni1_m = 0.3 * static_cast<double>(rows) * 200e-6;  // off-centre: asymmetric rings
    poni.poni2_m = 0.45 * static_cast<double>(cols) * 200e-6;
    poni.rot1_rad = 0.01;
    poni.rot2_rad = -0.02;
    poni.wavelength_m = 0.123984e-10;  // 100 keV
    return poni;
}

}  // namespace anisoflow::reduce::test
