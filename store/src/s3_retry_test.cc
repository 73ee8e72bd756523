#include "s3_retry.h"

#include <curl/curl.h>
#include <gtest/gtest.h>

#include <set>

namespace replboot::store::s3 {
namespace {

using namespace std::chrono_literals;

TEST(ClassifyHttpTest, TheTable) {
  struct Case {
    long status;
    const char* code;
    StatusCode want;
    bool retry;
  };
  const Case cases[] = {
      {200, "", StatusCode::kOk, false},
      {204, "", StatusCode::kOk, false},
      {403, "AccessDenied", StatusCode::kPermissionDenied, false},
      {403, "SignatureDoesNotMatch", StatusCode::kPermissionDenied, false},
      {403, "InvalidAccessKeyId", StatusCode::kPermissionDenied, false},
      {403, "", StatusCode::kPermissionDenied, false},
      {404, "NoSuchKey", StatusCode::kNotFound, false},
      {404, "", StatusCode::kNotFound, false},
      {404, "NoSuchBucket", StatusCode::kNotFound, false},
      {412, "PreconditionFailed", StatusCode::kIOError, false},
      {507, "", StatusCode::kNoSpace, false},
      {403, "QuotaExceeded", StatusCode::kPermissionDenied, false},  // a 403 is a 403
      {400, "QuotaExceeded", StatusCode::kNoSpace, false},
      {400, "EntityTooLarge", StatusCode::kNoSpace, false},
      {400, "RequestTimeout", StatusCode::kTimeout, true},
      {409, "ConditionalRequestConflict", StatusCode::kUnavailable, true},
      {429, "", StatusCode::kUnavailable, true},
      {500, "InternalError", StatusCode::kUnavailable, true},
      {502, "", StatusCode::kUnavailable, true},
      {503, "SlowDown", StatusCode::kUnavailable, true},
      {400, "InvalidArgument", StatusCode::kIOError, false},
      {301, "PermanentRedirect", StatusCode::kIOError, false},
  };
  for (const auto& c : cases) {
    Verdict v = ClassifyHttp(c.status, c.code);
    EXPECT_EQ(v.code, c.want) << c.status << " " << c.code;
    EXPECT_EQ(v.retry, c.retry) << c.status << " " << c.code;
    if (c.status >= 300) {
      EXPECT_NE(v.cause.find("HTTP " + std::to_string(c.status)), std::string::npos) << v.cause;
      EXPECT_NE(v.cause.find(c.code), std::string::npos) << v.cause;
    }
  }
  EXPECT_TRUE(ClassifyHttp(404, "NoSuchBucket").no_such_bucket);
  EXPECT_FALSE(ClassifyHttp(404, "NoSuchKey").no_such_bucket);
  EXPECT_TRUE(ClassifyHttp(412, "").precondition_failed);
}

TEST(ClassifyCurlTest, TransportFailures) {
  for (CURLcode code : {CURLE_COULDNT_CONNECT, CURLE_RECV_ERROR, CURLE_SEND_ERROR,
                        CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_COULDNT_RESOLVE_HOST}) {
    Verdict v = ClassifyCurl(code, "detail");
    EXPECT_TRUE(v.retry) << code;
    EXPECT_EQ(v.code, StatusCode::kUnavailable) << code;
    EXPECT_NE(v.cause.find("(" + std::to_string(code) + ")"), std::string::npos) << v.cause;
  }
  Verdict timeout = ClassifyCurl(CURLE_OPERATION_TIMEDOUT, "");
  EXPECT_TRUE(timeout.retry);
  EXPECT_EQ(timeout.code, StatusCode::kTimeout);
  Verdict tls = ClassifyCurl(CURLE_PEER_FAILED_VERIFICATION, "");
  EXPECT_FALSE(tls.retry);
  EXPECT_EQ(tls.code, StatusCode::kPermissionDenied);
  Verdict other = ClassifyCurl(CURLE_UNSUPPORTED_PROTOCOL, "");
  EXPECT_FALSE(other.retry);
  EXPECT_EQ(other.code, StatusCode::kIOError);
  // The detail is made printable: it cannot forge a log line.
  EXPECT_EQ(ClassifyCurl(CURLE_RECV_ERROR, "a\nb").cause.find('\n'), std::string::npos);
}

TEST(BackoffTest, GrowsWithJitterAndIsCapped) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 200; ++i) {
    auto d1 = Backoff(1, 100ms, 1000ms, rng);
    EXPECT_GE(d1, 50ms);
    EXPECT_LE(d1, 100ms);
    auto d3 = Backoff(3, 100ms, 1000ms, rng);
    EXPECT_GE(d3, 200ms);
    EXPECT_LE(d3, 400ms);
    auto d20 = Backoff(20, 100ms, 1000ms, rng);
    EXPECT_GE(d20, 500ms);
    EXPECT_LE(d20, 1000ms);
    auto huge = Backoff(1000, 100ms, 1000ms, rng);  // no overflow
    EXPECT_LE(huge, 1000ms);
  }
  // Jitter: not every delay is the same.
  std::set<int64_t> seen;
  for (int i = 0; i < 50; ++i) seen.insert(Backoff(4, 100ms, 8000ms, rng).count());
  EXPECT_GT(seen.size(), 10u);
}

}  // namespace
}  // namespace replboot::store::s3
