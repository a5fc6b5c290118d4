#pragma once
// A structure given by its harmonics on Q samples (issue 7: diffraction from atoms, or any
// measured or computed S0/S2 in SPEC 4's normalisation), resampled onto the renderer's tables so
// that FrameRenderer draws it with the same intensity model as the built-in strain modes.

#include <vector>

#include "anisoflow/core/result.hpp"
#include "anisoflow/sim/strained_structure.hpp"

namespace anisoflow::sim {

/// S0(Q) and S2(Q) at ascending Q samples (e.g. |Q| bins), NaN where a sample is missing
/// (an empty bin): S(Q, psi) = S0 + sqrt5 S2 P2(cos psi).
struct HarmonicSamples {
    std::vector<double> q_inv_angstrom;
    std::vector<double> s0;
    std::vector<double> s2;
};

/// The StrainedStructure::tabulated model of the samples on kHarmonicTableStepInvAngstrom steps
/// from Q = 0 to q_max: linear interpolation between finite samples; below the first one S0 is
/// held at its value there and S2 falls linearly to 0 at Q = 0 (S2 is even in Q and vanishes
/// there); beyond the last one S = 1 (S0 - 1 = S2 = 0), which a detector reaching further would
/// show as a step. Errors: fewer than 2 finite samples, lengths that differ, Q not ascending,
/// q_max not positive.
Result<StrainedStructure> tabulated_structure(const HarmonicSamples& samples,
                                              double q_max_inv_angstrom);

}  // namespace anisoflow::sim
