// Compiled into every GoogleTest binary (anisoflow_test): builds spdlog's registry and default
// logger before main(), so before any thread. The registry is a function-local static inside
// libspdlog.so, which is not instrumented: a thread that finds it already built passes the guard
// in that library unseen by ThreadSanitizer, which then reported the logger's construction as
// racing with its first use where a test starts services on threads before anything logged. The
// service binaries configure logging in main() before they start a thread.
#include <spdlog/spdlog.h>

namespace {
[[maybe_unused]] spdlog::logger* const kDefaultLogger = spdlog::default_logger_raw();
}  // namespace
