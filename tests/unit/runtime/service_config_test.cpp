// The four service schemas: the deploy/config files load and validate, the built-in defaults are
// those files, and validate() names every problem at once.

#include "anisoflow/runtime/service_config.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "anisoflow/runtime/config_loader.hpp"

namespace anisoflow::runtime {
namespace {

const std::filesystem::path kDeployConfig = ANISOFLOW_DEPLOY_CONFIG_DIR;

bool mentions(const std::vector<std::string>& problems, const std::string& text) {
    return std::any_of(problems.begin(), problems.end(), [&](const std::string& problem) {
        return problem.find(text) != std::string::npos;
    });
}

std::string joined(const std::vector<std::string>& problems) {
    std::string text;
    for (const auto& problem : problems) {
        text += problem + "\n";
    }
    return text;
}

// Reads a deploy/config file alone (no built-in defaults under it), so every key must be there.
template <class Config>
Config read_deploy_file(const std::string& name) {
    Config config;
    auto merged = merge_toml_file(config, kDeployConfig / name);
    EXPECT_TRUE(merged) << (merged ? "" : merged.error().message);
    return config;
}

TEST(DeployConfig, EveryExampleFileLoadsAndValidates) {
    const auto ingest = read_deploy_file<cfg::IngestConfig>("ingest.toml");
    const auto reduce = read_deploy_file<cfg::ReduceConfig>("reduce.toml");
    const auto analyze = read_deploy_file<cfg::AnalyzeConfig>("analyze.toml");
    const auto archive = read_deploy_file<cfg::ArchiveConfig>("archive.toml");
    const auto gateway = read_deploy_file<cfg::GatewayConfig>("gateway.toml");
    EXPECT_TRUE(validate(ingest).empty()) << joined(validate(ingest));
    EXPECT_TRUE(validate(gateway).empty()) << joined(validate(gateway));
    EXPECT_EQ(gateway.http().bind_address(), "127.0.0.1:8080");
    EXPECT_TRUE(validate(reduce).empty()) << joined(validate(reduce));
    EXPECT_TRUE(validate(analyze).empty()) << joined(validate(analyze));
    EXPECT_TRUE(validate(archive).empty()) << joined(validate(archive));
    // Spot checks that the files were read, not merely accepted.
    EXPECT_EQ(ingest.endpoints().frames_out().address(), "@tcp://127.0.0.1:5555");
    EXPECT_EQ(ingest.source().dectris_protocol(), cfg::DECTRIS_PROTOCOL_STREAM_V2);
    EXPECT_EQ(reduce.endpoints().frames_in().address(), ">tcp://ingest:5555");
    EXPECT_EQ(analyze.recompute_interval_ms(), 2000U);
    EXPECT_EQ(archive.logging().level(), cfg::LOG_LEVEL_INFO);
}

// The deploy files are the documented defaults, so each must write every key of its schema: a
// field added to the .proto without a line in the file fails here.
void expect_every_field_set(const google::protobuf::Message& message, const std::string& where) {
    const auto* type = message.GetDescriptor();
    const auto* reflection = message.GetReflection();
    for (int i = 0; i < type->field_count(); ++i) {
        const auto* field = type->field(i);
        if (field->is_repeated()) {
            continue;  // an empty list is a legitimate default
        }
        if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
            EXPECT_TRUE(reflection->HasField(message, field)) << where << field->name();
            expect_every_field_set(reflection->GetMessage(message, field),
                                   where + field->name() + ".");
        } else if (field->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_BOOL) {
            // proto3 scalars have no presence: zero means "not written" (or written as zero,
            // which validate() refuses for every numeric setting anyway). The optional sockets
            // (raw frames, run control, archive receipts), the watched folder's settings, CURVE
            // security and ingest's state_dir are the exceptions: their defaults are empty (off, or
            // unused by the default source kind; a state directory is a deployment's choice).
            const std::string key = where + field->name();
            if (key.ends_with("endpoints.raw_out.address") ||
                key.ends_with("endpoints.raw_in.address") ||
                key.ends_with("endpoints.run_control.address") ||
                key.ends_with("endpoints.receipts_in.address") ||
                key.ends_with("endpoints.receipts_out.address") ||
                key.ends_with("source.watch_directory") || key.ends_with("source.watch_pattern") ||
                key.ends_with("source.watch_hdf5_dataset") ||
                key.ends_with("security.curve_certificate") ||
                key.ends_with("security.curve_public_keys_dir") || key == "ingest: state_dir") {
                continue;
            }
            EXPECT_TRUE(reflection->HasField(message, field)) << key;
        }
    }
}

TEST(DeployConfig, EveryKeyIsWrittenInTheExampleFiles) {
    expect_every_field_set(read_deploy_file<cfg::IngestConfig>("ingest.toml"), "ingest: ");
    expect_every_field_set(read_deploy_file<cfg::ReduceConfig>("reduce.toml"), "reduce: ");
    expect_every_field_set(read_deploy_file<cfg::AnalyzeConfig>("analyze.toml"), "analyze: ");
    expect_every_field_set(read_deploy_file<cfg::ArchiveConfig>("archive.toml"), "archive: ");
    expect_every_field_set(read_deploy_file<cfg::GatewayConfig>("gateway.toml"), "gateway: ");
}

TEST(BuiltInDefaults, AreTheDeployConfigFiles) {
    cfg::ReduceConfig built_in;
    ASSERT_TRUE(merge_defaults(built_in));
    const auto from_file = read_deploy_file<cfg::ReduceConfig>("reduce.toml");
    EXPECT_EQ(built_in.SerializeAsString(), from_file.SerializeAsString());
    EXPECT_EQ(defaults_source(built_in), "deploy/config/reduce.toml (built in)");

    cfg::ArchiveConfig archive;
    ASSERT_TRUE(merge_defaults(archive));
    EXPECT_EQ(archive.SerializeAsString(),
              read_deploy_file<cfg::ArchiveConfig>("archive.toml").SerializeAsString());
}

bool is_loopback_host(std::string_view host) {
    return host == "127.0.0.1" || host == "localhost" || host == "[::1]" || host == "::1";
}

// Issue 6, deliverable 5: every socket binds to loopback unless configured otherwise
// (docs/security.md, "Loopback by default"). Collects, as "key: problem", every bind of `message`
// that is not loopback: a ZeroMQ address starting with "@" (tcp host other than 127.0.0.1,
// localhost or [::1]; ipc:// and inproc:// never leave the host) and every HTTP
// `bind_address` ("host:port", the metrics and the gateway's page). Connects (">") are not binds.
void collect_wide_binds(const google::protobuf::Message& message, const std::string& where,
                        std::vector<std::string>& wide) {
    const auto* type = message.GetDescriptor();
    const auto* reflection = message.GetReflection();
    for (int i = 0; i < type->field_count(); ++i) {
        const auto* field = type->field(i);
        const std::string key = where + field->name();
        if (field->is_repeated()) {
            continue;  // no repeated field holds an address
        }
        if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
            collect_wide_binds(reflection->GetMessage(message, field), key + ".", wide);
            continue;
        }
        if (field->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_STRING ||
            !field->name().ends_with("address")) {
            continue;
        }
        const std::string value = reflection->GetString(message, field);
        constexpr std::string_view kTcpBind = "@tcp://";
        if (value.starts_with(kTcpBind)) {
            const std::string_view rest = std::string_view(value).substr(kTcpBind.size());
            if (!is_loopback_host(rest.substr(0, rest.rfind(':')))) {
                wide.push_back(fmt::format("{}: binds '{}'", key, value));
            }
        } else if (value.starts_with("@")) {
            if (!value.starts_with("@ipc://") && !value.starts_with("@inproc://")) {
                wide.push_back(fmt::format("{}: binds '{}', an unknown transport", key, value));
            }
        } else if (field->name() == "bind_address" && !value.empty()) {
            if (!is_loopback_host(std::string_view(value).substr(0, value.rfind(':')))) {
                wide.push_back(fmt::format("{}: listens on '{}'", key, value));
            }
        }
    }
}

template <class Config>
std::vector<std::string> wide_binds_of_defaults(const std::string& file) {
    std::vector<std::string> wide;
    collect_wide_binds(read_deploy_file<Config>(file), "deploy/config/" + file + ": ", wide);
    Config built_in;
    EXPECT_TRUE(merge_defaults(built_in));
    collect_wide_binds(built_in, file + " (built in): ", wide);
    return wide;
}

TEST(DefaultBinds, EveryBindOfTheDeployFilesAndBuiltInDefaultsIsLoopback) {
    std::vector<std::string> wide;
    for (auto&& found : {wide_binds_of_defaults<cfg::IngestConfig>("ingest.toml"),
                         wide_binds_of_defaults<cfg::ReduceConfig>("reduce.toml"),
                         wide_binds_of_defaults<cfg::AnalyzeConfig>("analyze.toml"),
                         wide_binds_of_defaults<cfg::ArchiveConfig>("archive.toml"),
                         wide_binds_of_defaults<cfg::GatewayConfig>("gateway.toml")}) {
        wide.insert(wide.end(), found.begin(), found.end());
    }
    EXPECT_TRUE(wide.empty()) << "defaults must bind loopback; widen in the deployment instead "
                                 "(docker-compose.yml, deploy/k8s):\n"
                              << joined(wide);
}

TEST(DefaultBinds, TheCheckSeesAWideZeroMqBindAndAWideMetricsAddress) {
    cfg::AnalyzeConfig config;
    config.mutable_endpoints()->mutable_reduced_in()->set_address("@tcp://*:5557");
    config.mutable_endpoints()->mutable_results_out()->set_address("@tcp://127.0.0.1:5558");
    config.mutable_endpoints()->mutable_archive_out()->set_address("@ipc:///tmp/archive");
    config.mutable_endpoints()->mutable_control_in()->set_address(">tcp://ingest:5556");
    config.mutable_metrics()->set_bind_address("0.0.0.0:9103");
    std::vector<std::string> wide;
    collect_wide_binds(config, "", wide);
    EXPECT_EQ(wide.size(), 2U) << joined(wide);
    EXPECT_TRUE(mentions(wide, "endpoints.reduced_in.address: binds '@tcp://*:5557'"));
    EXPECT_TRUE(mentions(wide, "metrics.bind_address: listens on '0.0.0.0:9103'"));
}

TEST(BuiltInDefaults, ASiteFileNamesOnlyWhatItChanges) {
    cfg::AnalyzeConfig config;
    ASSERT_TRUE(merge_defaults(config));
    ASSERT_TRUE(merge_toml(config,
                           "threads = 16\n[endpoints.results_out]\naddress = \"@tcp://*:6000\"\n",
                           "site.toml"));
    EXPECT_EQ(config.threads(), 16U);
    EXPECT_EQ(config.endpoints().results_out().address(), "@tcp://*:6000");
    EXPECT_EQ(config.endpoints().results_out().send_hwm_messages(), 100U);  // from the default
    EXPECT_EQ(config.recompute_interval_ms(), 2000U);
    EXPECT_TRUE(validate(config).empty()) << joined(validate(config));
}

TEST(Validate, AnEmptyReduceConfigListsEveryProblem) {
    const auto problems = validate(cfg::ReduceConfig{});
    EXPECT_TRUE(mentions(problems, "instance: empty"));
    EXPECT_TRUE(mentions(problems, "logging.level: unset"));
    EXPECT_TRUE(mentions(problems, "heartbeat_interval_ms: 0"));
    EXPECT_TRUE(mentions(problems, "endpoints.frames_in.address: empty"));
    EXPECT_TRUE(mentions(problems, "endpoints.control_in.address: empty"));
    EXPECT_TRUE(mentions(problems, "endpoints.reduced_out.address: empty"));
    EXPECT_TRUE(mentions(problems, "endpoints.reduced_out.send_hwm_messages: 0"));
    EXPECT_TRUE(mentions(problems, "threads: 0"));
    EXPECT_TRUE(mentions(problems, "queue_capacity_frames: 0"));
    EXPECT_TRUE(mentions(problems, "pending_frames_max: 0"));
    EXPECT_TRUE(mentions(problems, "send_timeout_ms: 0"));
    EXPECT_FALSE(mentions(problems, "metrics"));  // disabled metrics need no address
}

TEST(Validate, NamesSeveralProblemsOfAnOtherwiseValidConfig) {
    cfg::AnalyzeConfig config;
    ASSERT_TRUE(merge_defaults(config));
    config.set_threads(0);
    config.set_recompute_interval_ms(0);
    config.mutable_endpoints()->mutable_reduced_in()->set_address("tcp://*:5557");
    config.mutable_endpoints()->mutable_results_out()->set_address("@udp://*:5558");
    config.mutable_endpoints()->mutable_control_in()->set_address(">tcp://ingest");
    config.mutable_metrics()->set_bind_address("0.0.0.0:99999");
    const auto problems = validate(config);
    EXPECT_EQ(problems.size(), 6U) << joined(problems);
    EXPECT_TRUE(mentions(problems, "threads: 0"));
    EXPECT_TRUE(mentions(problems, "recompute_interval_ms: 0"));
    EXPECT_TRUE(mentions(problems,
                         "endpoints.reduced_in.address: 'tcp://*:5557' starts with "
                         "neither @ (bind) nor > (connect)"));
    EXPECT_TRUE(mentions(problems, "endpoints.results_out.address: '@udp://*:5558' has no"));
    EXPECT_TRUE(
        mentions(problems, "endpoints.control_in.address: '>tcp://ingest' needs HOST:PORT"));
    EXPECT_TRUE(mentions(problems, "metrics.bind_address: '0.0.0.0:99999'"));
}

TEST(Validate, IngestChecksTheSourceItUses) {
    cfg::IngestConfig config;
    ASSERT_TRUE(merge_defaults(config));
    EXPECT_TRUE(validate(config).empty()) << joined(validate(config));
    config.mutable_source()->set_kind(cfg::SOURCE_KIND_FRAME_FILES);
    EXPECT_TRUE(mentions(validate(config), "source.frame_files: empty"));
    config.mutable_source()->add_frame_files("frames_*.tif");
    EXPECT_TRUE(validate(config).empty()) << joined(validate(config));
    config.mutable_source()->set_kind(cfg::SOURCE_KIND_DECTRIS_STREAM);
    config.mutable_source()->set_dectris_protocol(cfg::DECTRIS_PROTOCOL_UNSPECIFIED);
    config.mutable_source()->set_dectris_address("");
    const auto problems = validate(config);
    EXPECT_EQ(problems.size(), 2U) << joined(problems);
    EXPECT_TRUE(mentions(problems, "source.dectris_protocol: unset"));
    EXPECT_TRUE(mentions(problems, "source.dectris_address"));
}

TEST(Validate, ArchiveNeedsADirectory) {
    cfg::ArchiveConfig config;
    ASSERT_TRUE(merge_defaults(config));
    config.set_archive_dir("");
    config.mutable_metrics()->set_enabled(false);
    config.mutable_metrics()->set_bind_address("");
    const auto problems = validate(config);
    ASSERT_EQ(problems.size(), 1U) << joined(problems);
    EXPECT_TRUE(mentions(problems, "archive_dir: empty"));
}

// Receipts (docs/protocol.md, "Archive receipts") are off by default; switched on, their socket
// and bound are checked, and ingest's need the raw frame feed they are about.
TEST(Validate, ArchiveReceiptsNeedASocketABoundAndIngestsTheRawFeed) {
    cfg::IngestConfig ingest;
    ASSERT_TRUE(merge_defaults(ingest));
    ingest.mutable_endpoints()->mutable_receipts_in()->set_address("tcp://archive:5563");
    ingest.set_max_unreceipted_raw_frames(0);
    const auto ingest_problems = validate(ingest);
    EXPECT_TRUE(mentions(ingest_problems, "endpoints.receipts_in: set, but endpoints.raw_out"))
        << joined(ingest_problems);
    EXPECT_TRUE(mentions(ingest_problems, "endpoints.receipts_in.address: 'tcp://archive:5563'"))
        << joined(ingest_problems);
    EXPECT_TRUE(mentions(ingest_problems, "max_unreceipted_raw_frames: 0"))
        << joined(ingest_problems);

    cfg::AnalyzeConfig analyze;
    ASSERT_TRUE(merge_defaults(analyze));
    EXPECT_FALSE(mentions(validate(analyze), "receipts")) << "off by default";
    analyze.mutable_endpoints()->mutable_receipts_in()->set_address(">tcp://archive:5563");
    analyze.set_max_unreceipted_messages(0);
    EXPECT_TRUE(mentions(validate(analyze), "max_unreceipted_messages: 0"));

    cfg::ArchiveConfig archive;
    ASSERT_TRUE(merge_defaults(archive));
    archive.mutable_endpoints()->mutable_receipts_out()->set_address("@tcp://127.0.0.1:5563");
    archive.set_receipt_interval_ms(0);
    EXPECT_TRUE(mentions(validate(archive), "receipt_interval_ms: 0"));
    archive.set_receipt_interval_ms(30000);
    EXPECT_TRUE(mentions(validate(archive), "receipt_interval_ms: 30000; at most 10000"));
}

TEST(ServiceConfig, AnUnknownKeyInAServiceFileNamesThePath) {
    cfg::IngestConfig config;
    auto merged =
        merge_toml(config, "[endpoints.fram_out]\naddress = \"@tcp://*:1\"\n", "ingest.toml");
    ASSERT_FALSE(merged);
    EXPECT_NE(merged.error().message.find(
                  "ingest.toml:1: endpoints.fram_out: unknown key (keys here: frames_out, "
                  "control_out, raw_out, run_control, receipts_in)"),
              std::string::npos)
        << merged.error().message;
}

TEST(ServiceConfig, LogLevelNamesMatchSpdlog) {
    EXPECT_EQ(log_level_name(cfg::LOG_LEVEL_TRACE), "trace");
    EXPECT_EQ(log_level_name(cfg::LOG_LEVEL_WARN), "warn");
    EXPECT_EQ(log_level_name(cfg::LOG_LEVEL_OFF), "off");
    EXPECT_EQ(log_level_name(cfg::LOG_LEVEL_UNSPECIFIED), "");
}

// Every leaf key path of `type` ("endpoints.frames_out.address").
void leaf_paths(const google::protobuf::Descriptor& type, const std::string& prefix,
                std::vector<std::string>& paths) {
    for (int i = 0; i < type.field_count(); ++i) {
        const auto* field = type.field(i);
        if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
            leaf_paths(*field->message_type(), prefix + field->name() + ".", paths);
        } else {
            paths.push_back(prefix + field->name());
        }
    }
}

// docs/configuration.md has a section "## <service>" with a row for every key of the schema.
TEST(DocsConfiguration, ListsEveryKeyOfEveryService) {
    std::ifstream file(std::filesystem::path(ANISOFLOW_DOCS_DIR) / "configuration.md");
    ASSERT_TRUE(file);
    std::ostringstream text;
    text << file.rdbuf();
    const std::string docs = text.str();
    const std::vector<std::pair<std::string, const google::protobuf::Descriptor*>> services = {
        {"ingest", cfg::IngestConfig::descriptor()},
        {"gateway", cfg::GatewayConfig::descriptor()},
        {"reduce", cfg::ReduceConfig::descriptor()},
        {"analyze", cfg::AnalyzeConfig::descriptor()},
        {"archive", cfg::ArchiveConfig::descriptor()}};
    for (const auto& [service, type] : services) {
        const auto begin = docs.find("\n## " + service + " ");
        ASSERT_NE(begin, std::string::npos) << "no section for " << service;
        const auto end = docs.find("\n## ", begin + 1);
        const std::string section = docs.substr(begin, end - begin);
        std::vector<std::string> paths;
        leaf_paths(*type, "", paths);
        for (const std::string& path : paths) {
            EXPECT_NE(section.find("| `" + path + "` |"), std::string::npos)
                << service << ": " << path << " is not documented";
        }
    }
}

}  // namespace
}  // namespace anisoflow::runtime
