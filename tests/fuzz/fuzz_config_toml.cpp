// libFuzzer target: the TOML configuration readers of lib/runtime (merge_toml by reflection,
// then validate) for every service configuration, the DECTRIS run file and a run's experiment
// (`anisoflow run --config`). Input: byte 0 picks the message (and whether the text goes through
// apply_override instead), the rest is the TOML text. Whatever loads must print with to_toml()
// and load back (what --check-config promises).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <google/protobuf/message.h>

#include "anisoflow/config/v1/services.pb.h"
#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/runtime/config_loader.hpp"
#include "anisoflow/runtime/service_config.hpp"
#include "anisoflow/transport/experiment.hpp"

namespace {

using namespace anisoflow;  // NOLINT(google-build-using-namespace)
namespace cfg = ::anisoflow::config::v1;

constexpr unsigned kMessageKinds = 7;

std::unique_ptr<google::protobuf::Message> make_message(unsigned kind) {
    switch (kind % kMessageKinds) {
        case 0:
            return std::make_unique<cfg::IngestConfig>();
        case 1:
            return std::make_unique<cfg::ReduceConfig>();
        case 2:
            return std::make_unique<cfg::AnalyzeConfig>();
        case 3:
            return std::make_unique<cfg::ArchiveConfig>();
        case 4:
            return std::make_unique<cfg::GatewayConfig>();
        case 5:
            return std::make_unique<cfg::DectrisRun>();
        default:
            return std::make_unique<stream::v1::ExperimentConfig>();
    }
}

template <class Config>
bool validate_as(const google::protobuf::Message& message) {
    const auto* config = dynamic_cast<const Config*>(&message);
    if (config != nullptr) {
        (void)runtime::validate(*config);
    }
    return config != nullptr;
}

void check(const google::protobuf::Message& message) {
    if (validate_as<cfg::IngestConfig>(message) || validate_as<cfg::ReduceConfig>(message) ||
        validate_as<cfg::AnalyzeConfig>(message) || validate_as<cfg::ArchiveConfig>(message) ||
        validate_as<cfg::GatewayConfig>(message)) {
        return;
    }
    if (const auto* experiment = dynamic_cast<const stream::v1::ExperimentConfig*>(&message)) {
        (void)transport::experiment_problems(*experiment);
    }
}

}  // namespace

// libFuzzer's entry point, named by libFuzzer.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const unsigned kind = data[0] & 0x7FU;
    const bool as_override = (data[0] & 0x80U) != 0;
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    auto message = make_message(kind);
    if (!runtime::merge_defaults(*message)) {
        __builtin_trap();  // the compiled-in defaults always load
    }
    const auto merged = as_override ? runtime::apply_override(*message, text)
                                    : runtime::merge_toml(*message, text, "fuzz.toml");
    if (!merged) {
        return 0;
    }
    check(*message);
    // The effective configuration --check-config prints must read back to the same values (as
    // TOML: to_toml writes empty sub-messages as tables, so their presence may differ).
    const std::string effective = runtime::to_toml(*message);
    auto reread = make_message(kind);
    if (!runtime::merge_toml(*reread, effective, "effective.toml") ||
        runtime::to_toml(*reread) != effective) {
        __builtin_trap();
    }
    return 0;
}
