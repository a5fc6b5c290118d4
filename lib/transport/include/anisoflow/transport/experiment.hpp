#pragma once
// The run configuration on the wire (ExperimentConfig, PoniGeometry in stream.proto) and the
// library's own types: conversions, and the checks a sender applies before it opens a run.

#include <string>
#include <vector>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/geometry/poni.hpp"

namespace anisoflow::transport {

namespace pb = ::anisoflow::stream::v1;

/// A PONI calibration as RunStart carries it (SPEC 1: same conventions, same units).
pb::PoniGeometry to_message(const geometry::PoniGeometry& poni);
/// The PONI calibration a RunStart carries.
geometry::PoniGeometry to_poni(const pb::PoniGeometry& geometry);

/// Every problem that keeps a run with this configuration from being reduced and analysed, each
/// naming its field and value (e.g. "geometry.distance_m is 0, must be > 0"); empty when none.
/// What analyze checks further (AnalysisSettings::validate: the r grid against the fit range,
/// the composition's elements) it still reports itself when the run starts.
std::vector<std::string> experiment_problems(const pb::ExperimentConfig& config);

}  // namespace anisoflow::transport
