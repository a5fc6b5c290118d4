#pragma once
// The documented defaults, deploy/config/<service>.toml, compiled in (default_configs.cpp.in).

#include <string_view>

namespace anisoflow::runtime {

struct BuiltInDefaults {
    std::string_view message;  ///< full Protobuf name, e.g. "anisoflow.config.v1.IngestConfig"
    std::string_view source;   ///< where the text came from, for error messages
    std::string_view text;     ///< the TOML
};

/// The defaults of the message named `message_full_name`, or nullptr when it has none.
const BuiltInDefaults* find_built_in_defaults(std::string_view message_full_name);

}  // namespace anisoflow::runtime
