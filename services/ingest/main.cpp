// anisoflow-ingest: a detector stream (DECTRIS Stream v1/v2) or an anisoflow stream in, frames to
// the reduce workers by acknowledged dispatch, run control on the PUB (services/ingest/README.md).

#include "anisoflow/runtime/service_main.hpp"

#include "ingest_service.hpp"

int main(int argc, char** argv) {
    return anisoflow::runtime::service_main<anisoflow::runtime::cfg::IngestConfig>(
        "ingest", argc, argv, anisoflow::ingest::run);
}
