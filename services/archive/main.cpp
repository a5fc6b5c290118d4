// anisoflow-archive: one NeXus file per run (services/archive/README.md).

#include "anisoflow/runtime/service_main.hpp"

#include "archive_service.hpp"

int main(int argc, char** argv) {
    return anisoflow::runtime::service_main<anisoflow::runtime::cfg::ArchiveConfig>(
        "archive", argc, argv, anisoflow::archiver::run);
}
