// The web view's static files (server/web/static/), embedded in the binary at build time
// (embed_assets.cmake writes the table; no file is read at run time, no external asset is used).
// Thread-safe (constant data).
#ifndef NANONAS_SERVER_WEB_ASSETS_H_
#define NANONAS_SERVER_WEB_ASSETS_H_

#include <cstddef>
#include <string_view>

namespace nanonas::web {

struct EmbeddedAsset {
  const char* path;          // "/static/app.js"
  const char* content_type;  // by extension
  const char* data;
  size_t size;
};

// The asset served at `path`, or null.
const EmbeddedAsset* FindAsset(std::string_view path);

}  // namespace nanonas::web

#endif  // NANONAS_SERVER_WEB_ASSETS_H_
