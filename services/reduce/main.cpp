// anisoflow-reduce: integrates detector frames into cakes (services/reduce/README.md).

#include "anisoflow/runtime/service_main.hpp"

#include "reduce_service.hpp"

int main(int argc, char** argv) {
    return anisoflow::runtime::service_main<anisoflow::runtime::cfg::ReduceConfig>(
        "reduce", argc, argv, anisoflow::reducer::run);
}
