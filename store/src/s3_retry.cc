#include "s3_retry.h"

#include <curl/curl.h>

#include <algorithm>

#include "store_internal.h"

namespace replboot::store::s3 {

Verdict ClassifyHttp(long http_status, const std::string& s3_code) {
  Verdict v;
  v.cause = "HTTP " + std::to_string(http_status) + (s3_code.empty() ? "" : " " + s3_code);
  if (http_status >= 200 && http_status < 300) {
    v.cause.clear();
    return v;
  }
  if (s3_code == "NoSuchBucket") {
    v.code = StatusCode::kNotFound;
    v.no_such_bucket = true;
  } else if (http_status == 403 || s3_code == "AccessDenied" ||
             s3_code == "SignatureDoesNotMatch" || s3_code == "InvalidAccessKeyId") {
    v.code = StatusCode::kPermissionDenied;
  } else if (http_status == 404 || s3_code == "NoSuchKey") {
    v.code = StatusCode::kNotFound;
  } else if (http_status == 412 || s3_code == "PreconditionFailed") {
    v.code = StatusCode::kIOError;
    v.precondition_failed = true;
  } else if (http_status == 507 || s3_code == "QuotaExceeded" || s3_code == "EntityTooLarge") {
    v.code = StatusCode::kNoSpace;
  } else if (s3_code == "RequestTimeout") {
    v.code = StatusCode::kTimeout;
    v.retry = true;
  } else if (http_status == 429 || http_status >= 500 || s3_code == "SlowDown" ||
             s3_code == "InternalError" || s3_code == "ServiceUnavailable" ||
             s3_code == "ConditionalRequestConflict") {
    v.code = StatusCode::kUnavailable;
    v.retry = true;
  } else {
    v.code = StatusCode::kIOError;
  }
  return v;
}

Verdict ClassifyCurl(int curl_code, const std::string& detail) {
  Verdict v;
  const auto code = static_cast<CURLcode>(curl_code);
  v.cause = std::string("curl: ") + curl_easy_strerror(code) + " (" + std::to_string(curl_code) +
            ")" + (detail.empty() ? "" : ": " + Printable(detail));
  switch (code) {
    case CURLE_OK:
      v.cause.clear();
      return v;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:  // a reset during the handshake
      v.code = StatusCode::kUnavailable;
      v.retry = true;
      break;
    case CURLE_OPERATION_TIMEDOUT:
      v.code = StatusCode::kTimeout;
      v.retry = true;
      break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
      v.code = StatusCode::kPermissionDenied;
      break;
    default:
      v.code = StatusCode::kIOError;
      break;
  }
  return v;
}

std::chrono::milliseconds Backoff(int attempt, std::chrono::milliseconds first,
                                  std::chrono::milliseconds max, std::mt19937_64& rng) {
  int64_t base = std::max<int64_t>(first.count(), 1);
  for (int i = 1; i < attempt && base < max.count(); ++i) base *= 2;
  base = std::min<int64_t>(base, std::max<int64_t>(max.count(), 1));
  std::uniform_int_distribution<int64_t> half(0, base / 2);
  return std::chrono::milliseconds(base - base / 2 + half(rng));
}

}  // namespace replboot::store::s3
