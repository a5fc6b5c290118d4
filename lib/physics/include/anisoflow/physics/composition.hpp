#pragma once
// Sample composition from a chemical formula (SPEC 5: `Zr52.5Cu17.9Ni14.6Al10Ti5`), the input of
// the scattering-factor averages <f>^2, <f^2> and C(Q).

#include <string>
#include <string_view>
#include <vector>

#include "anisoflow/core/result.hpp"

namespace anisoflow::physics {

/// One element of a composition: atomic number, symbol and atomic fraction (fractions of a
/// parsed composition sum to 1).
struct Element {
    int z = 0;
    std::string symbol;
    double fraction = 0.0;
};

/// Parses a formula made of element symbols (an uppercase letter and an optional lowercase
/// letter) each followed by an optional decimal count (default 1): `Zr52.5Cu17.9Ni14.6Al10Ti5`,
/// `B2O3`, `Se`, `C8H8`. Repeated elements are merged in order of first appearance and the counts
/// are normalised to atomic fractions summing to 1. Errors name the bad input and its position
/// (0-based): unknown symbol, zero or negative count, unexpected character, empty formula.
[[nodiscard]] Result<std::vector<Element>> parse_composition(std::string_view formula);

}  // namespace anisoflow::physics
