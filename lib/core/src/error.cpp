#include "anisoflow/core/result.hpp"

namespace anisoflow {

std::string_view to_string(ErrorCode code) {
    switch (code) {
        case ErrorCode::kInvalidArgument:
            return "invalid argument";
        case ErrorCode::kParse:
            return "parse error";
        case ErrorCode::kNotFound:
            return "not found";
        case ErrorCode::kIo:
            return "i/o error";
        case ErrorCode::kCorrupt:
            return "corrupt data";
        case ErrorCode::kUnsupported:
            return "unsupported";
    }
    return "unknown error";
}

Error Error::with_context(std::string_view context) const {
    return Error{code, fmt::format("{}: {}", context, message)};
}

}  // namespace anisoflow
