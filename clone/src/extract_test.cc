#include "extract.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace replboot::clone {
namespace {

// Records what it is given; fails at a chosen byte; can be slow.
class FakeExtractor : public StreamExtractor {
 public:
  FakeExtractor(std::string* out, size_t fail_at, bool* finished, bool* aborted)
      : out_(out), fail_at_(fail_at), finished_(finished), aborted_(aborted) {}
  Status Write(std::span<const uint8_t> bytes) override {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
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

}  // namespace
}  // namespace replboot::clone
