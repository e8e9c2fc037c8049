// The build-info gauge every nanonas process registers: nanonas_build_info{version, commit} 1
// (version from CMake's PROJECT_VERSION, commit from git at configure time). Registering it on
// one registry from two owners gives one family, as both use the same help text.
// Thread-safe as prometheus::Registry is.
#ifndef NANONAS_COMMON_METRICS_BUILD_INFO_METRIC_H_
#define NANONAS_COMMON_METRICS_BUILD_INFO_METRIC_H_

#include "prometheus/registry.h"

namespace nanonas {

void RegisterBuildInfo(prometheus::Registry& registry);

}  // namespace nanonas

#endif  // NANONAS_COMMON_METRICS_BUILD_INFO_METRIC_H_
