#include "extract.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "xbstream_test_util.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::clone {
namespace {

// Records what it is given; fails at a chosen byte; can be slow.
class FakeExtractor : public StreamExtractor {
 public:
  FakeExtractor(std::string* out, size_t fail_at, bool* finished, bool* aborted)
      : out_(out), fail_at_(fail_at), finished_(finished), aborted_(aborted) {}
  Status Write(std::span<const uint8_t> bytes) override {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    buffers_seen.insert(bytes.data());
    if (out_->size() + bytes.size() > fail_at_) {
      return Status(StatusCode::kCorruption, fmt::format("checksum mismatch at byte {}", fail_at_));
    }
    out_->append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return Status::Ok();
  }
  Status Finish() override {
    *finished_ = true;
    return Status::Ok();
  }
  void Abort() override { *aborted_ = true; }

  std::set<const uint8_t*> buffers_seen;  // where the bytes of each Write were

 private:
  std::string* out_;
  size_t fail_at_;
  bool* finished_;
  bool* aborted_;
};

std::vector<uint8_t> Bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

TEST(PipelinedExtractorTest, KeepsOrderAndFinishes) {
  std::string out;
  bool finished = false, aborted = false;
  auto p =
      MakePipelined(std::make_unique<FakeExtractor>(&out, SIZE_MAX, &finished, &aborted), 4096);
  std::string want;
  for (int i = 0; i < 200; ++i) {
    auto b = Bytes(100 + i, static_cast<uint8_t>(i));
    want.append(b.begin(), b.end());
    ASSERT_TRUE(p->Write(b).ok());
  }
  ASSERT_TRUE(p->Finish().ok());
  EXPECT_TRUE(finished);
  EXPECT_EQ(out, want);
}

TEST(PipelinedExtractorTest, InnerErrorSurfacesAndFinishFails) {
  std::string out;
  bool finished = false, aborted = false;
  auto p = MakePipelined(std::make_unique<FakeExtractor>(&out, 1000, &finished, &aborted), 1 << 20);
  Status seen;
  for (int i = 0; i < 100 && seen.ok(); ++i) seen = p->Write(Bytes(100, 1));
  Status fin = p->Finish();
  // The error shows on a later Write or, at the latest, on Finish; never lost.
  Status err = seen.ok() ? fin : seen;
  EXPECT_EQ(err.code(), StatusCode::kCorruption);
  EXPECT_NE(err.message().find("checksum"), std::string::npos);
  EXPECT_FALSE(fin.ok());
  EXPECT_FALSE(finished);
}

TEST(PipelinedExtractorTest, AbortStopsTheWorkerAndAbortsInner) {
  std::string out;
  bool finished = false, aborted = false;
  auto p =
      MakePipelined(std::make_unique<FakeExtractor>(&out, SIZE_MAX, &finished, &aborted), 1 << 20);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(p->Write(Bytes(1000, 2)).ok());
  p->Abort();
  EXPECT_TRUE(aborted);
  EXPECT_FALSE(finished);
}

TEST(PipelinedExtractorTest, WriteLargerThanTheQueueStillProgresses) {
  std::string out;
  bool finished = false, aborted = false;
  auto p = MakePipelined(std::make_unique<FakeExtractor>(&out, SIZE_MAX, &finished, &aborted), 16);
  ASSERT_TRUE(p->Write(Bytes(1000, 3)).ok());
  ASSERT_TRUE(p->Write(Bytes(1000, 4)).ok());
  ASSERT_TRUE(p->Finish().ok());
  EXPECT_EQ(out.size(), 2000u);
}

// The receive path (clone.cc) reads each DATA frame into a buffer of kMaxDataPayload
// capacity and hands it over with WriteBlock. Against a disk slower than the network, a
// long stream goes through a fixed handful of buffers: the queue's cap over the buffer
// size, plus the one being read into and one spare. This is the receiver's memory bound.
TEST(PipelinedExtractorTest, WriteBlockStreamsThroughAFixedSetOfBuffers) {
  constexpr size_t kBlock = 64 * 1024;  // a frame's buffer (capacity)
  constexpr size_t kCap = 8 * kBlock;   // the pipeline's cap
  std::string out;
  bool finished = false, aborted = false;
  auto inner = std::make_unique<FakeExtractor>(&out, SIZE_MAX, &finished, &aborted);
  FakeExtractor* fake = inner.get();
  auto p = MakePipelined(std::move(inner), kCap);
  std::string want;
  std::vector<uint8_t> buffer;
  std::set<const uint8_t*> allocated;
  for (int i = 0; i < 400; ++i) {  // 400 frames of up to 64 KiB: about 50 x the cap
    if (buffer.capacity() == 0) {
      buffer.reserve(kBlock);
      allocated.insert(buffer.data());
    }
    ASSERT_EQ(buffer.capacity(), kBlock);  // what comes back is a buffer handed over before
    buffer.resize(kBlock - static_cast<size_t>(i % 7) * 1000);
    for (size_t j = 0; j < buffer.size(); j += 997) buffer[j] = static_cast<uint8_t>(i + j);
    want.append(reinterpret_cast<const char*>(buffer.data()), buffer.size());
    ASSERT_TRUE(p->WriteBlock(&buffer).ok());
  }
  ASSERT_TRUE(p->Finish().ok());
  EXPECT_TRUE(finished);
  EXPECT_EQ(out, want);
  EXPECT_LE(allocated.size(), kCap / kBlock + 2);
  // Handed over, not copied: the inner extractor saw only the producer's own buffers.
  for (const uint8_t* seen : fake->buffers_seen) EXPECT_TRUE(allocated.contains(seen));
}

// Spelled out rather than taken from datadir_files::kAll, so a name dropped from the list
// fails here: each is a file the node keeps in its datadir, which a donor must not plant.
TEST(NativeExtractorTest, RefusesEveryFileOfTheNodeAndTheCallersNames) {
  replboot::testing::TempDir tmp{"extract-test"};
  for (std::string name : {
           "replboot-clone.json",             // the commit marker (datadir.h)
           "replboot-cluster.id",             // from the HEADER, never the stream (cluster_id.h)
           "replboot-replication.json",       // the replica's intent (replication/configure.h)
           "replboot-promote.json",           // a recovered primary's promotion marker
           "replboot-root-password.pending",  // root password not set yet (daemon/bootstrap.h)
           "replboot-resume.json",            // a clone's durable point (resume.h)
           "replboot-resume.files",           // the names its stream made (resume.h)
           "caller-name.json"}) {
    const std::string dir = tmp.Path(name + ".staging");
    std::filesystem::create_directory(dir);
    auto extractor = MakeExtractor(dir, Flavour::kMariaDB, {"caller-name.json"});
    ASSERT_TRUE(extractor) << extractor.error().message();
    backup::testing::StreamBuilder stream;
    stream.File("ibdata1", "data").File(name, "{\"donor\": \"forged\"}");
    Status s = (*extractor)->Write(stream.bytes());
    if (s.ok()) s = (*extractor)->Finish();
    ASSERT_FALSE(s.ok()) << name;
    EXPECT_EQ(s.code(), StatusCode::kCorruption);
    EXPECT_NE(s.message().find(name), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("reserved"), std::string::npos) << s.message();
    EXPECT_FALSE(std::filesystem::exists(dir + "/" + name));
  }
  // The heartbeat's schema directory "replboot" is the donor's data like any other.
  const std::string dir = tmp.Path("heartbeat.staging");
  std::filesystem::create_directory(dir);
  auto extractor = MakeExtractor(dir, Flavour::kMariaDB);
  ASSERT_TRUE(extractor) << extractor.error().message();
  backup::testing::StreamBuilder stream;
  stream.File("ibdata1", "data").File("replboot/heartbeat.ibd", "rows");
  ASSERT_TRUE((*extractor)->Write(stream.bytes()).ok());
  ASSERT_TRUE((*extractor)->Finish().ok());
  EXPECT_TRUE(std::filesystem::exists(dir + "/replboot/heartbeat.ibd"));
}

}  // namespace
}  // namespace replboot::clone
