#pragma once
// Prometheus metrics of a service: a Registry that creates typed handles (Counter, Gauge,
// Histogram, CounterFamily) and a MetricsServer that serves them at GET /metrics. This is the one
// module that includes prometheus-cpp; its types stay behind forward declarations here.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "anisoflow/core/result.hpp"

namespace prometheus {
class Counter;
class Exposer;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace anisoflow::metrics {

/// Constant labels of one time series; keep them low-cardinality (never a run id or frame number).
using Labels = std::map<std::string, std::string>;

/// A monotonically increasing count. A cheap handle: copies refer to the same series, which lives
/// as long as the Registry that made it. Thread-safe.
class Counter {
  public:
    void increment(double amount = 1.0);
    [[nodiscard]] double value() const;

  private:
    friend class Registry;
    friend class CounterFamily;
    explicit Counter(prometheus::Counter* counter) : counter_(counter) {}
    prometheus::Counter* counter_;
};

/// A value that goes up and down (queue depth, bytes in flight). Same lifetime rules as Counter.
class Gauge {
  public:
    void set(double value);
    void increment(double amount = 1.0);
    void decrement(double amount = 1.0);
    [[nodiscard]] double value() const;

  private:
    friend class Registry;
    explicit Gauge(prometheus::Gauge* gauge) : gauge_(gauge) {}
    prometheus::Gauge* gauge_;
};

/// Observations counted in cumulative buckets (latencies, sizes). Same lifetime rules as Counter.
class Histogram {
  public:
    void observe(double value);

  private:
    friend class Registry;
    explicit Histogram(prometheus::Histogram* histogram) : histogram_(histogram) {}
    prometheus::Histogram* histogram_;
};

/// Counters of one name told apart by one label, e.g.
/// `anisoflow_ingest_frames_rejected_total{reason="payload_size_mismatch"}`.
class CounterFamily {
  public:
    /// The counter of `label_value` (created at 0 the first time). Takes a lock: look the
    /// counters up once, or use it for rare events such as rejections.
    [[nodiscard]] Counter with(std::string_view label_value) const;
    [[nodiscard]] const std::string& label_name() const { return label_name_; }

  private:
    friend class Registry;
    CounterFamily(prometheus::Family<prometheus::Counter>* family, std::string label_name)
        : family_(family), label_name_(std::move(label_name)) {}
    prometheus::Family<prometheus::Counter>* family_;
    std::string label_name_;
};

/// The project version and the git commit it was configured from ("unknown" outside git).
[[nodiscard]] std::string_view build_version();
[[nodiscard]] std::string_view build_git_sha();

/// The metrics of one process. Names follow `anisoflow_<service>_<what>_<unit>`, counters end in
/// `_total`; a name outside that shape, or one registered again with another type, is refused.
/// Registering a name again with the same type and labels returns the same series. Creates
/// `anisoflow_build_info{version,git_sha} 1`. Thread-safe.
class Registry {
  public:
    Registry();
    ~Registry();
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;
    Registry(Registry&&) noexcept;
    Registry& operator=(Registry&&) noexcept;

    [[nodiscard]] Result<Counter> counter(std::string_view name, std::string_view help,
                                          const Labels& labels = {});
    [[nodiscard]] Result<Gauge> gauge(std::string_view name, std::string_view help,
                                      const Labels& labels = {});
    /// `bucket_bounds_upper` are the buckets' upper bounds, strictly increasing (+Inf is added).
    [[nodiscard]] Result<Histogram> histogram(std::string_view name, std::string_view help,
                                              const std::vector<double>& bucket_bounds_upper,
                                              const Labels& labels = {});
    /// A counter per value of `label_name`; each of `initial_values` is created at 0 now, so a
    /// dashboard sees every reason before the first one happens.
    [[nodiscard]] Result<CounterFamily> counter_family(
        std::string_view name, std::string_view help, std::string_view label_name,
        const std::vector<std::string>& initial_values = {});

    /// The current values in the Prometheus text exposition format (what GET /metrics returns).
    [[nodiscard]] std::string serialize() const;

  private:
    friend class MetricsServer;
    std::shared_ptr<prometheus::Registry> registry_;
};

/// Serves a Registry's metrics at http://<bind_address>/metrics on a background thread until
/// destroyed. The registry must outlive the server.
class MetricsServer {
  public:
    /// Listens on `bind_address` ("127.0.0.1:9101"; port 0 = a free port, see port()). Errors
    /// name the address (in use, malformed, not permitted).
    [[nodiscard]] static Result<MetricsServer> start(const std::string& bind_address,
                                                     Registry& registry);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;
    MetricsServer(MetricsServer&&) noexcept;
    MetricsServer& operator=(MetricsServer&&) noexcept;

    /// The TCP port actually listened on.
    [[nodiscard]] std::uint16_t port() const { return port_; }

  private:
    MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, std::uint16_t port);
    std::unique_ptr<prometheus::Exposer> exposer_;
    std::uint16_t port_;
};

/// True for `anisoflow_<what>` names made of [a-z0-9_] (the house naming, STYLE.md "Naming").
[[nodiscard]] bool is_valid_metric_name(std::string_view name);

}  // namespace anisoflow::metrics
