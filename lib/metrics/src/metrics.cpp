#include "anisoflow/metrics/metrics.hpp"

#include <algorithm>
#include <exception>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

// Set by lib/metrics/CMakeLists.txt on this file only, so a new commit rebuilds one object.
#ifndef ANISOFLOW_VERSION
#error "ANISOFLOW_VERSION must be defined by the build"
#endif
#ifndef ANISOFLOW_GIT_SHA
#define ANISOFLOW_GIT_SHA "unknown"
#endif

namespace anisoflow::metrics {

namespace {

constexpr std::string_view kPrefix = "anisoflow_";
constexpr std::string_view kCounterSuffix = "_total";

bool is_name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

// Refuses names outside the house shape before prometheus-cpp sees them; `kind` names the type.
Result<void> check_name(std::string_view name, std::string_view kind) {
    if (!is_valid_metric_name(name)) {
        return fail(ErrorCode::kInvalidArgument,
                    "metric name '{}' is not of the form anisoflow_<service>_<what>_<unit> "
                    "([a-z0-9_])",
                    name);
    }
    const bool counter_suffix =
        name.size() > kCounterSuffix.size() && name.ends_with(kCounterSuffix);
    if (kind == "counter" && !counter_suffix) {
        return fail(ErrorCode::kInvalidArgument, "counter '{}' must end in _total", name);
    }
    if (kind != "counter" && counter_suffix) {
        return fail(ErrorCode::kInvalidArgument, "{} '{}' must not end in _total (counters only)",
                    kind, name);
    }
    return {};
}

// prometheus-cpp reports a name registered with another type, or a bad label name, by throwing;
// the exception stops here.
template <class Make>
auto guarded(std::string_view name, Make&& make) -> Result<decltype(make())> {
    try {
        return make();
    } catch (const std::exception& error) {
        return fail(ErrorCode::kInvalidArgument, "metric '{}': {}", name, error.what());
    }
}

}  // namespace

bool is_valid_metric_name(std::string_view name) {
    return name.size() > kPrefix.size() && name.starts_with(kPrefix) &&
           std::all_of(name.begin(), name.end(), is_name_char) && !name.ends_with("_");
}

std::string_view build_version() { return ANISOFLOW_VERSION; }
std::string_view build_git_sha() { return ANISOFLOW_GIT_SHA; }

void Counter::increment(double amount) { counter_->Increment(amount); }
double Counter::value() const { return counter_->Value(); }

void Gauge::set(double value) { gauge_->Set(value); }
void Gauge::increment(double amount) { gauge_->Increment(amount); }
void Gauge::decrement(double amount) { gauge_->Decrement(amount); }
double Gauge::value() const { return gauge_->Value(); }

void Histogram::observe(double value) { histogram_->Observe(value); }

Counter CounterFamily::with(std::string_view label_value) const {
    return Counter(&family_->Add({{label_name_, std::string(label_value)}}));
}

Registry::Registry() : registry_(std::make_shared<prometheus::Registry>()) {
    prometheus::BuildGauge()
        .Name("anisoflow_build_info")
        .Help("Version and git commit of this build; the value is always 1")
        .Register(*registry_)
        .Add({{"version", std::string(build_version())}, {"git_sha", std::string(build_git_sha())}})
        .Set(1.0);
}

Registry::~Registry() = default;
Registry::Registry(Registry&&) noexcept = default;
Registry& Registry::operator=(Registry&&) noexcept = default;

Result<Counter> Registry::counter(std::string_view name, std::string_view help,
                                  const Labels& labels) {
    if (auto checked = check_name(name, "counter"); !checked) {
        return tl::unexpected(checked.error());
    }
    return guarded(name, [&] {
        auto& family = prometheus::BuildCounter()
                           .Name(std::string(name))
                           .Help(std::string(help))
                           .Register(*registry_);
        return Counter(&family.Add(labels));
    });
}

Result<Gauge> Registry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
    if (auto checked = check_name(name, "gauge"); !checked) {
        return tl::unexpected(checked.error());
    }
    return guarded(name, [&] {
        auto& family = prometheus::BuildGauge()
                           .Name(std::string(name))
                           .Help(std::string(help))
                           .Register(*registry_);
        return Gauge(&family.Add(labels));
    });
}

Result<Histogram> Registry::histogram(std::string_view name, std::string_view help,
                                      const std::vector<double>& bucket_bounds_upper,
                                      const Labels& labels) {
    if (auto checked = check_name(name, "histogram"); !checked) {
        return tl::unexpected(checked.error());
    }
    if (bucket_bounds_upper.empty() ||
        std::adjacent_find(bucket_bounds_upper.begin(), bucket_bounds_upper.end(),
                           [](double a, double b) { return !(a < b); }) !=
            bucket_bounds_upper.end()) {
        return fail(ErrorCode::kInvalidArgument,
                    "histogram '{}': bucket bounds must be non-empty and strictly increasing",
                    name);
    }
    return guarded(name, [&] {
        auto& family = prometheus::BuildHistogram()
                           .Name(std::string(name))
                           .Help(std::string(help))
                           .Register(*registry_);
        return Histogram(&family.Add(labels, bucket_bounds_upper));
    });
}

Result<CounterFamily> Registry::counter_family(std::string_view name, std::string_view help,
                                               std::string_view label_name,
                                               const std::vector<std::string>& initial_values) {
    if (auto checked = check_name(name, "counter"); !checked) {
        return tl::unexpected(checked.error());
    }
    return guarded(name, [&] {
        auto& family = prometheus::BuildCounter()
                           .Name(std::string(name))
                           .Help(std::string(help))
                           .Register(*registry_);
        CounterFamily result(&family, std::string(label_name));
        for (const std::string& value : initial_values) {
            (void)result.with(value);
        }
        return result;
    });
}

std::string Registry::serialize() const {
    return prometheus::TextSerializer().Serialize(registry_->Collect());
}

MetricsServer::MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, std::uint16_t port)
    : exposer_(std::move(exposer)), port_(port) {}
MetricsServer::~MetricsServer() = default;
MetricsServer::MetricsServer(MetricsServer&&) noexcept = default;
MetricsServer& MetricsServer::operator=(MetricsServer&&) noexcept = default;

Result<MetricsServer> MetricsServer::start(const std::string& bind_address, Registry& registry) {
    const auto colon = bind_address.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == bind_address.size()) {
        return fail(ErrorCode::kInvalidArgument,
                    "metrics bind address '{}' is not host:port (e.g. 127.0.0.1:9101)",
                    bind_address);
    }
    std::unique_ptr<prometheus::Exposer> exposer;
    try {
        // One thread: a scrape every few seconds needs no more.
        exposer = std::make_unique<prometheus::Exposer>(bind_address, 1);
    } catch (const std::exception& error) {
        return fail(ErrorCode::kIo, "metrics bind address '{}': cannot listen: {}", bind_address,
                    error.what());
    }
    exposer->RegisterCollectable(registry.registry_);
    const auto ports = exposer->GetListeningPorts();
    if (ports.empty() || ports.front() <= 0 || ports.front() > 65535) {
        return fail(ErrorCode::kIo, "metrics bind address '{}': no listening port", bind_address);
    }
    return MetricsServer(std::move(exposer), static_cast<std::uint16_t>(ports.front()));
}

}  // namespace anisoflow::metrics
