#include "common/metrics/build_info_metric.h"

#include "common/base/build_info.h"
#include "prometheus/gauge.h"

namespace nanonas {

void RegisterBuildInfo(prometheus::Registry& registry) {
  prometheus::BuildGauge()
      .Name("nanonas_build_info")
      .Help("Always 1; the labels name the version and git commit of this build.")
      .Register(registry)
      .Add({{"version", kBuildVersion}, {"commit", kBuildCommit}})
      .Set(1);
}

}  // namespace nanonas
