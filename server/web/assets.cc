#include "server/web/assets.h"

namespace nanonas::web {

// Defined in the generated web_assets_data.cc.
extern const EmbeddedAsset kEmbeddedAssets[];
extern const size_t kNumEmbeddedAssets;

const EmbeddedAsset* FindAsset(std::string_view path) {
  for (size_t i = 0; i < kNumEmbeddedAssets; ++i) {
    if (path == kEmbeddedAssets[i].path) return &kEmbeddedAssets[i];
  }
  return nullptr;
}

}  // namespace nanonas::web
