#pragma once
// Expected failures travel as values: Result<T> is tl::expected<T, Error> (docs/development.md,
// "Errors"). Bugs are asserts; exceptions stay inside the modules that wrap throwing APIs.

#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <tl/expected.hpp>

namespace anisoflow {

/// Coarse category of an expected failure; the message carries the detail a user acts on.
enum class ErrorCode {
    kInvalidArgument,  ///< a value given by the user is out of its domain
    kParse,            ///< a text or binary format could not be read (bad key, bad number)
    kNotFound,         ///< a file, dataset or key is missing
    kIo,               ///< the operating system or a library failed to read or write
    kCorrupt,          ///< data disagree with their own header (truncated file, wrong size)
    kUnsupported,      ///< a valid but unimplemented variant (e.g. PONI parallax)
};

std::string_view to_string(ErrorCode code);

struct Error {
    ErrorCode code;
    std::string message;

    /// Returns a copy whose message is prefixed with `context: ` (e.g. the file name).
    [[nodiscard]] Error with_context(std::string_view context) const;
};

template <class T>
class [[nodiscard]] Result : public tl::expected<T, Error> {
  public:
    using tl::expected<T, Error>::expected;
    // NOLINTNEXTLINE(google-explicit-constructor): lets `return some_expected;` read naturally.
    Result(tl::expected<T, Error> other) : tl::expected<T, Error>(std::move(other)) {}
};

/// Builds the error side of a Result: `return fail(ErrorCode::kParse, "line {}: ...", n);`
template <class... Args>
[[nodiscard]] tl::unexpected<Error> fail(ErrorCode code, fmt::format_string<Args...> format,
                                         Args&&... args) {
    return tl::unexpected<Error>(Error{code, fmt::format(format, std::forward<Args>(args)...)});
}

}  // namespace anisoflow
