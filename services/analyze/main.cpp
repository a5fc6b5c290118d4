// anisoflow-analyze: the live anisotropy analysis of each run (services/analyze/README.md).

#include "anisoflow/runtime/service_main.hpp"

#include "analyze_service.hpp"

int main(int argc, char** argv) {
    return anisoflow::runtime::service_main<anisoflow::runtime::cfg::AnalyzeConfig>(
        "analyze", argc, argv, anisoflow::analyzer::run);
}
