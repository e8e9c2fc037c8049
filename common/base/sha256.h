// SHA-256 over OpenSSL's EVP interface: the one digest behind dataset ids, upload checks and
// artifact checksums. Sha256 is a streaming hasher (Update any number of times, then HexDigest
// once); Sha256Hex hashes one buffer. Digests are 64 lower-case hex digits.
// Thread-safety: a Sha256 object is not shared between threads; Sha256Hex is thread-safe.
#ifndef NANONAS_COMMON_BASE_SHA256_H_
#define NANONAS_COMMON_BASE_SHA256_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of this header

namespace nanonas {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view data);
  void Update(const void* data, size_t size);
  // The digest of everything passed to Update; call once, then discard the object.
  std::string HexDigest();

 private:
  evp_md_ctx_st* ctx_;
};

std::string Sha256Hex(absl::string_view bytes);

}  // namespace nanonas

#endif  // NANONAS_COMMON_BASE_SHA256_H_
