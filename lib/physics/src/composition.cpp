// Formula parsing for SPEC 5 compositions; element symbols are resolved by xraylib.

#include "anisoflow/physics/composition.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <string>
#include <system_error>

#include <xraylib/xraylib.h>

namespace anisoflow::physics {
namespace {

// Heaviest element with tabulated X-ray data of interest here (xraylib's FF_Rayl and SF_Compt
// tables end at Z = 98 for some quantities).
constexpr int kMaxAtomicNumber = 98;

bool is_upper(char c) { return std::isupper(static_cast<unsigned char>(c)) != 0; }
bool is_lower(char c) { return std::islower(static_cast<unsigned char>(c)) != 0; }
bool is_digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }

// Atomic number of an element symbol, 0 when xraylib does not know it.
int atomic_number(const std::string& symbol) {
    xrl_error* error = nullptr;
    const int z = SymbolToAtomicNumber(symbol.c_str(), &error);
    if (error != nullptr) {
        xrl_error_free(error);
        return 0;
    }
    return z;
}

}  // namespace

Result<std::vector<Element>> parse_composition(std::string_view formula) {
    if (formula.empty()) {
        return fail(ErrorCode::kInvalidArgument, "empty composition formula");
    }
    std::vector<Element> elements;
    double total = 0.0;
    std::size_t pos = 0;
    while (pos < formula.size()) {
        const std::size_t symbol_pos = pos;
        if (!is_upper(formula[pos])) {
            return fail(ErrorCode::kParse,
                        "unexpected character '{}' at position {} in '{}' (expected an element "
                        "symbol such as 'Zr')",
                        formula[pos], pos, formula);
        }
        ++pos;
        if (pos < formula.size() && is_lower(formula[pos])) {
            ++pos;
        }
        std::string symbol(formula.substr(symbol_pos, pos - symbol_pos));
        const int z = atomic_number(symbol);
        if (z <= 0 || z > kMaxAtomicNumber) {
            return fail(ErrorCode::kInvalidArgument,
                        "unknown element symbol '{}' at position {} in '{}'", symbol, symbol_pos,
                        formula);
        }

        double count = 1.0;
        const std::size_t count_pos = pos;
        if (pos < formula.size() && (is_digit(formula[pos]) || formula[pos] == '.' ||
                                     formula[pos] == '-' || formula[pos] == '+')) {
            std::size_t end = pos;
            if (formula[end] == '-' || formula[end] == '+') {
                ++end;
            }
            while (end < formula.size() && (is_digit(formula[end]) || formula[end] == '.')) {
                ++end;
            }
            const std::string_view text = formula.substr(pos, end - pos);
            // from_chars does not accept a leading '+'; parse the digits after it.
            const std::string_view digits = text.starts_with('+') ? text.substr(1) : text;
            const char* first = digits.data();
            const char* last = digits.data() + digits.size();
            const auto [ptr, ec] = std::from_chars(first, last, count);
            if (ec != std::errc{} || ptr != last) {
                return fail(ErrorCode::kParse, "bad count '{}' for '{}' at position {} in '{}'",
                            text, symbol, count_pos, formula);
            }
            pos = end;
        }
        if (!(count > 0.0) || !std::isfinite(count)) {
            return fail(ErrorCode::kInvalidArgument,
                        "count {} for '{}' at position {} in '{}' must be positive", count, symbol,
                        count_pos, formula);
        }

        total += count;
        bool merged = false;
        for (Element& e : elements) {
            if (e.z == z) {
                e.fraction += count;
                merged = true;
                break;
            }
        }
        if (!merged) {
            elements.push_back(Element{z, std::move(symbol), count});
        }
    }
    for (Element& e : elements) {
        e.fraction /= total;
    }
    return elements;
}

}  // namespace anisoflow::physics
