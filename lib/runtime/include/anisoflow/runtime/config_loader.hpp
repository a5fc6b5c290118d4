#pragma once
// Configuration read from TOML into a Protobuf message by reflection (docs/configuration.md):
// tables are sub-messages, keys are field names, enums are written by name, arrays fill repeated
// fields. Unknown keys and wrong types are errors naming the file, line and key path; every such
// problem in a file is reported at once.

#include <filesystem>
#include <string>
#include <string_view>

#include <google/protobuf/message.h>

#include "anisoflow/core/result.hpp"

namespace anisoflow::runtime {

/// Sets the fields named in the TOML `text` on `message`, leaving the others as they are (so
/// files layer: defaults, then a site file). A repeated field named in the text is replaced.
/// `source` names the text in errors, e.g. "ingest.toml".
[[nodiscard]] Result<void> merge_toml(google::protobuf::Message& message, std::string_view text,
                                      std::string_view source);

/// merge_toml() of the file at `path`; a missing or unreadable file is an error naming it.
[[nodiscard]] Result<void> merge_toml_file(google::protobuf::Message& message,
                                           const std::filesystem::path& path);

/// Applies one `key.path=value` override: the value is read as the field's type wants it (a bare
/// word for a string or an enum, a TOML value otherwise, a TOML array such as ["a", "b"] for a
/// repeated field), through the same code as the files.
[[nodiscard]] Result<void> apply_override(google::protobuf::Message& message,
                                          std::string_view assignment);

/// The built-in defaults of a service configuration (deploy/config/<service>.toml, compiled in),
/// merged into `message`; a message with no built-in file is left unchanged.
[[nodiscard]] Result<void> merge_defaults(google::protobuf::Message& message);

/// The name of the built-in defaults of `message`'s type ("deploy/config/ingest.toml"), or ""
/// when it has none.
[[nodiscard]] std::string_view defaults_source(const google::protobuf::Message& message);

/// Every field of `message` as TOML (zero values included), readable back by merge_toml():
/// what --check-config prints as the effective configuration.
[[nodiscard]] std::string to_toml(const google::protobuf::Message& message);

/// A configuration: the built-in defaults of `Config` (if any), then the file at `path`.
template <class Config>
[[nodiscard]] Result<Config> load_config(const std::filesystem::path& path) {
    Config config;
    if (auto defaults = merge_defaults(config); !defaults) {
        return tl::unexpected(defaults.error());
    }
    if (auto merged = merge_toml_file(config, path); !merged) {
        return tl::unexpected(merged.error());
    }
    return config;
}

}  // namespace anisoflow::runtime
