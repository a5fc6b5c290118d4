#pragma once
// `anisoflow keys DIR NAME...`: CURVE certificates for the services' tcp sockets
// (docs/security.md). Writes DIR/NAME.key (public: copy it into every peer's public keys
// directory) and DIR/NAME.key_secret (mode 0600: it stays on NAME's host).

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace anisoflow::app {

struct KeysOptions {
    std::string directory;
    std::vector<std::string> names;  ///< one certificate each, e.g. the hosts "ingest" "reduce-0"
};

CLI::App* add_keys_command(CLI::App& app, KeysOptions& options);
int run_keys(const KeysOptions& options);

}  // namespace anisoflow::app
