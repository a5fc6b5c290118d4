// anisoflow-gateway: the dashboard, the JSON API and live pushes (services/gateway/README.md).

#include "anisoflow/runtime/service_main.hpp"

#include "gateway_service.hpp"

int main(int argc, char** argv) {
    return anisoflow::runtime::service_main<anisoflow::runtime::cfg::GatewayConfig>(
        "gateway", argc, argv, anisoflow::gateway::run);
}
