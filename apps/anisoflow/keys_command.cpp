#include "keys_command.hpp"

#include <cstdio>

#include "anisoflow/transport/curve.hpp"

namespace anisoflow::app {

CLI::App* add_keys_command(CLI::App& app, KeysOptions& options) {
    CLI::App* command = app.add_subcommand(
        "keys",
        "Write CURVE certificates (NAME.key public, NAME.key_secret private) for the services' "
        "tcp sockets; name each after the host that uses it (docs/security.md)");
    command->add_option("directory", options.directory, "directory to write into (must exist)")
        ->required();
    command->add_option("names", options.names, "one certificate per name, e.g. ingest reduce-0")
        ->required();
    return command;
}

int run_keys(const KeysOptions& options) {
    for (const std::string& name : options.names) {
        auto keys = transport::generate_curve_key_pair();
        if (!keys) {
            std::fprintf(stderr, "anisoflow keys: %s\n", keys.error().message.c_str());
            return 1;
        }
        auto written = transport::write_curve_certificates(options.directory, name, *keys);
        if (!written) {
            std::fprintf(stderr, "anisoflow keys: %s\n", written.error().message.c_str());
            return 1;
        }
        std::printf("%s: public %s, secret %s\n", name.c_str(), written->first.c_str(),
                    written->second.c_str());
    }
    return 0;
}

}  // namespace anisoflow::app
