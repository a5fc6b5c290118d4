#pragma once
// A service loop on a thread of this process, with its own stop flag and metrics registry: how
// the integration tests and bench_pipeline run the real services (the binaries' code) without
// starting processes. The binaries use service_main(), which adds signals and the metrics server.

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "anisoflow/core/result.hpp"
#include "anisoflow/metrics/metrics.hpp"
#include "anisoflow/runtime/service_main.hpp"
#include "anisoflow/runtime/stop.hpp"

namespace anisoflow::runtime {

class ServiceThread {
  public:
    using Loop = std::function<Result<void>(ServiceContext&)>;

    /// Starts `loop` at once on a new thread; `name` is ServiceContext::service. Fails only when
    /// the process is out of file descriptors (the stop flag is a pipe).
    [[nodiscard]] static Result<std::unique_ptr<ServiceThread>> start(std::string name, Loop loop);
    /// Stops and joins the loop (its result is then lost: call stop() to see it).
    ~ServiceThread();
    ServiceThread(const ServiceThread&) = delete;
    ServiceThread& operator=(const ServiceThread&) = delete;
    ServiceThread(ServiceThread&&) = delete;
    ServiceThread& operator=(ServiceThread&&) = delete;

    /// Requests stop, joins the thread and returns what the loop returned. Idempotent.
    Result<void> stop();
    /// The loop's metrics in the Prometheus text format.
    [[nodiscard]] std::string metrics() const;

  private:
    ServiceThread(std::string name, StopSource stop, Loop loop);

    metrics::Registry registry_;
    StopSource stop_;
    ServiceContext context_;
    Result<void> result_;
    std::thread thread_;
};

}  // namespace anisoflow::runtime
