// What to do with one attempt's outcome: done (success or an error retrying cannot fix), or
// retry. The table, from the object_store.h contract:
//
//   answer                                         code                retried
//   2xx                                            ok                  -
//   403 (AccessDenied, SignatureDoesNotMatch,      kPermissionDenied   no
//        InvalidAccessKeyId, ...)
//   404 NoSuchBucket                               kNotFound (bucket)  no
//   404 NoSuchKey / other                          kNotFound           no
//   412 PreconditionFailed                         kPrecondition*      no
//   507, QuotaExceeded, EntityTooLarge             kNoSpace            no
//   400 RequestTimeout                             kTimeout            yes
//   429, 5xx, SlowDown, InternalError,             kUnavailable        yes
//   409 ConditionalRequestConflict (a concurrent
//   conditional write in flight: AWS says retry)
//   other 4xx                                      kIOError            no
//   curl: couldn't connect/resolve, send/recv      kUnavailable        yes
//         error, got nothing, partial file
//   curl: operation timed out                      kTimeout            yes
//   curl: TLS verification                         kPermissionDenied   no
//   curl: anything else                            kIOError            no
// (* PutIfAbsent turns it into `false`; elsewhere it is kIOError.)
#ifndef REPLBOOT_STORE_S3_RETRY_H_
#define REPLBOOT_STORE_S3_RETRY_H_

#include <chrono>
#include <cstdint>
#include <random>
#include <string>

#include "replboot/base/status.h"

namespace replboot::store::s3 {

struct Verdict {
  bool retry = false;
  StatusCode code = StatusCode::kOk;  // the code if this is the last attempt
  bool precondition_failed = false;   // 412
  bool no_such_bucket = false;
  std::string cause;  // "HTTP 503 SlowDown", "curl: Couldn't connect to server (7)"
};

// An HTTP answer with its S3 error code ("" when the body had none).
Verdict ClassifyHttp(long http_status, const std::string& s3_code);
// A transfer that ended without an answer (curl's CURLcode as an int); `detail` is curl's
// error buffer (no credentials are in it: they are never part of a URL).
Verdict ClassifyCurl(int curl_code, const std::string& detail);

// The wait before attempt `attempt` + 1 (attempt >= 1): min(max, first * 2^(attempt-1)),
// then "equal jitter": half of it fixed, half random, so callers that failed together do not
// come back together.
std::chrono::milliseconds Backoff(int attempt, std::chrono::milliseconds first,
                                  std::chrono::milliseconds max, std::mt19937_64& rng);

}  // namespace replboot::store::s3

#endif  // REPLBOOT_STORE_S3_RETRY_H_
