// SHA-256 against the FIPS 180-2 test vectors, one-shot and streamed.
#include "common/base/sha256.h"

#include <string>

#include "gtest/gtest.h"

namespace nanonas {
namespace {

TEST(Sha256Test, MatchesTheKnownVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256Test, StreamedPiecesEqualTheWholeMillionAs) {
  Sha256 hash;
  const std::string piece(1000, 'a');
  for (int i = 0; i < 999; ++i) hash.Update(piece);
  hash.Update(piece.data(), 600);
  hash.Update(absl::string_view(piece).substr(0, 400));
  const std::string expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  EXPECT_EQ(hash.HexDigest(), expected);
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')), expected);
}

TEST(Sha256Test, BytesAfterANulCount) {
  EXPECT_NE(Sha256Hex(absl::string_view("a\0b", 3)), Sha256Hex("a"));
  EXPECT_EQ(Sha256Hex(absl::string_view("a\0b", 3)).size(), 64u);
}

}  // namespace
}  // namespace nanonas
