// The streamed dataset archive: read back with libarchive it holds the folder's files byte for
// byte; its chunks never exceed the bound whatever the folder's size; its size is known upfront.
#include "client/tar_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nanonas {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;

// name -> bytes of every entry of a tar archive.
std::map<std::string, std::string> ReadTar(const std::string& bytes) {
  std::map<std::string, std::string> out;
  struct archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  EXPECT_EQ(archive_read_open_memory(a, bytes.data(), bytes.size()), ARCHIVE_OK);
  struct archive_entry* e;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    std::string data(static_cast<size_t>(archive_entry_size(e)), '\0');
    EXPECT_EQ(archive_read_data(a, data.data(), data.size()), static_cast<la_ssize_t>(data.size()));
    out[archive_entry_pathname(e)] = data;
  }
  archive_read_free(a);
  return out;
}

class TarWriterTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("nanonas-tar-test-" + std::to_string(getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes a file of `size` pseudo-random bytes; returns them.
  std::string Write(const std::string& rel, size_t size, unsigned seed) {
    std::string bytes(size, '\0');
    unsigned x = seed * 2654435761u + 1;
    for (char& ch : bytes) {
      x = x * 1103515245u + 12345u;
      ch = static_cast<char>(x >> 16);
    }
    fs::create_directories((dir_ / rel).parent_path());
    std::ofstream(dir_ / rel, std::ios::binary) << bytes;
    return bytes;
  }

  fs::path dir_;
};

TEST_F(TarWriterTest, TheStreamedArchiveHoldsTheFolderByteForByteInBoundedChunks) {
  std::map<std::string, std::string> expected;
  // 40 files of up to ~60 KiB in three classes: ~1.2 MiB, hundreds of 4 KiB chunks.
  for (int i = 0; i < 40; ++i) {
    const std::string name = std::string(i % 3 == 0   ? "cats"
                                         : i % 3 == 1 ? "dogs"
                                                      : "owls") +
                             "/img" + std::to_string(i) + ".png";
    expected[name] = Write(name, 1 + static_cast<size_t>(i) * 1531, i);
  }
  expected["dogs/empty.png"] = Write("dogs/empty.png", 0, 99);
  Write("cats/.hidden", 10, 1);                      // skipped
  Write(".git/config", 10, 2);                       // a hidden folder: not a class
  fs::create_directories(dir_ / "owls" / "nested");  // not a regular file: skipped

  auto listing = ListDatasetFolder(dir_.string());
  ASSERT_TRUE(listing.ok()) << listing.status();
  EXPECT_EQ(listing->classes, 3);
  EXPECT_EQ(listing->files.size(), expected.size());
  int64_t file_bytes = 0;
  for (const auto& [name, bytes] : expected) file_bytes += static_cast<int64_t>(bytes.size());
  EXPECT_EQ(listing->file_bytes, file_bytes);

  constexpr size_t kChunk = 4096;
  std::string archive;
  size_t largest = 0;
  int64_t calls = 0;
  auto stats = StreamTar(*listing, kChunk, [&](absl::string_view chunk) {
    largest = std::max(largest, chunk.size());
    ++calls;
    archive.append(chunk.data(), chunk.size());
    return true;
  });
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GT(archive.size(), 100 * kChunk);  // many chunks
  EXPECT_LE(largest, kChunk);
  EXPECT_EQ(stats->max_chunk, largest);
  EXPECT_LE(stats->max_buffered, kChunk);
  EXPECT_EQ(stats->chunks, calls);
  EXPECT_EQ(stats->bytes, static_cast<int64_t>(archive.size()));
  EXPECT_EQ(ReadTar(archive), expected);

  // The size announced in the header before streaming is the streamed size.
  auto size = TarArchiveSize(*listing);
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_EQ(*size, static_cast<int64_t>(archive.size()));

  // The same folder streams the same bytes (the server deduplicates by digest).
  std::string again;
  ASSERT_TRUE(StreamTar(*listing, 1 << 20, [&](absl::string_view chunk) {
                again.append(chunk.data(), chunk.size());
                return true;
              }).ok());
  EXPECT_EQ(again, archive);
}

TEST_F(TarWriterTest, ASinkThatStopsAbortsTheStream) {
  Write("a/x.png", 50000, 1);
  Write("b/y.png", 50000, 2);
  auto listing = ListDatasetFolder(dir_.string());
  ASSERT_TRUE(listing.ok());
  int calls = 0;
  auto stats = StreamTar(*listing, 1024, [&](absl::string_view) { return ++calls < 3; });
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(calls, 3);  // nothing is sent after the sink said stop
}

TEST_F(TarWriterTest, AFileThatShrankSinceTheListingIsAnError) {
  Write("a/x.png", 5000, 1);
  Write("b/y.png", 5000, 2);
  auto listing = ListDatasetFolder(dir_.string());
  ASSERT_TRUE(listing.ok());
  Write("b/y.png", 100, 3);
  auto stats = StreamTar(*listing, 1024, [](absl::string_view) { return true; });
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(stats.status().message()), HasSubstr("changed"));
}

TEST_F(TarWriterTest, ListingErrorsSayWhatIsWrong) {
  EXPECT_EQ(ListDatasetFolder((dir_ / "missing").string()).status().code(),
            absl::StatusCode::kNotFound);
  Write("file.txt", 3, 1);
  auto not_dir = ListDatasetFolder((dir_ / "file.txt").string());
  EXPECT_THAT(std::string(not_dir.status().message()), HasSubstr("not a folder"));
  auto no_classes = ListDatasetFolder(dir_.string());
  EXPECT_THAT(std::string(no_classes.status().message()), HasSubstr("no class sub-folders"));
  fs::create_directories(dir_ / "empty");
  auto no_files = ListDatasetFolder(dir_.string());
  EXPECT_THAT(std::string(no_files.status().message()), HasSubstr("holds no files"));
}

}  // namespace
}  // namespace nanonas
