// S3Store: one object per request over libcurl, signed by curl's own SigV4 (CURLOPT_AWS_SIGV4).
//
// How curl 7.88 signs (lib/http_aws_sigv4.c), and what follows for us:
//  - The canonical URI and query are the URL's path and query *as written*: curl neither
//    re-encodes nor sorts them. So Target::Url() writes the key in SigV4's encoding and the
//    query sorted by name, and CURLOPT_PATH_AS_IS keeps curl from touching the path.
//  - Every header we set (CURLOPT_HTTPHEADER) is signed, plus host and x-amz-date. Headers curl
//    adds itself (Content-Length, Expect: 100-continue) are not, which is allowed.
//  - The payload hash is the value of an `x-amz-content-sha256` header when we set one;
//    without it curl hashes CURLOPT_POSTFIELDS, i.e. an empty body for an upload from a read
//    callback. We always set it to the real SHA-256 of the body: S3 then checks the body it
//    received against the signed hash (XAmzContentSHA256Mismatch), so a body altered or cut on
//    the way is refused, not stored.
//  - A '/' in a query value is signed encoded (ListObjectsV2 prefix=backups%2F), as AWS and
//    the spec want. moto 5.2.1 on its own answers that with 403 SignatureDoesNotMatch (it
//    signs the decoded value); the tests put tests/harness/fault_proxy.py in front of it, which
//    checks the signature AWS's way and signs again for moto. Do not "fix" this for a bare moto.
#include <curl/curl.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <vector>

#include "replboot/base/files.h"
#include "s3_request.h"
#include "s3_retry.h"
#include "s3_xml.h"
#include "store_internal.h"

namespace replboot::store {

namespace {

using s3::Verdict;

constexpr size_t kMaxErrorBody = 64 * 1024;       // what we keep of an error answer
constexpr uint64_t kMaxListBody = 16 * 1024 * 1024;  // one page of 1000 keys of 1 KiB is ~1.3 MiB
constexpr size_t kMaxListedObjects = 10'000'000;
constexpr int kMaxEmptyPages = 100;
const std::string kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::once_flag curl_init_once;
CURLcode curl_init_result = CURLE_OK;

bool CurlReady() {
  std::call_once(curl_init_once, [] { curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  return curl_init_result == CURLE_OK;
}

bool Is2xx(long status) { return status >= 200 && status < 300; }

// What one attempt collects; the callbacks below get it as their user pointer.
struct Transfer {
  std::span<const uint8_t> upload;
  size_t sent = 0;
  uint64_t max_body = 0;
  std::vector<uint8_t> body;
  long status = 0;  // of the response whose headers are being read
  bool has_length = false;
  uint64_t length = 0;
  bool bad_length = false;
  bool too_large = false;
  std::stop_token stop;
  bool cancelled = false;
};

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  std::string_view line(data, n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.starts_with("HTTP/")) {  // a new response (after 100 Continue, the final one)
    t->status = 0;
    t->has_length = false;
    t->bad_length = false;
    const size_t space = line.find(' ');
    uint64_t code = 0;
    if (space != std::string_view::npos && line.size() >= space + 4 &&
        s3::ParseUint64(line.substr(space + 1, 3), &code)) {
      t->status = static_cast<long>(code);
    }
    return n;
  }
  if (line.empty()) {  // end of this response's headers
    if (Is2xx(t->status) && t->has_length && t->length > t->max_body) {
      t->too_large = true;
      return 0;  // aborts the transfer before a byte of the body is read
    }
    return n;
  }
  constexpr std::string_view kLength = "content-length:";
  if (line.size() > kLength.size() &&
      strncasecmp(line.data(), kLength.data(), kLength.size()) == 0) {
    std::string_view value = line.substr(kLength.size());
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    uint64_t length = 0;
    if (s3::ParseUint64(value, &length)) {
      t->has_length = true;
      t->length = length;
    } else {
      t->bad_length = true;
    }
  }
  return n;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (Is2xx(t->status)) {
    if (t->body.size() + n > t->max_body) {  // no Content-Length, or more than it said
      t->too_large = true;
      return 0;
    }
    t->body.insert(t->body.end(), data, data + n);
  } else if (t->body.size() < kMaxErrorBody) {  // keep the start of an error, drop the rest
    const size_t keep = std::min(n, kMaxErrorBody - t->body.size());
    t->body.insert(t->body.end(), data, data + keep);
  }
  return n;
}

size_t OnRead(char* buffer, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = std::min(size * count, t->upload.size() - t->sent);
  if (n > 0) std::memcpy(buffer, t->upload.data() + t->sent, n);
  t->sent += n;
  return n;
}

int OnSeek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<uint64_t>(offset) > t->upload.size()) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  t->sent = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (t->stop.stop_requested()) {
    t->cancelled = true;
    return 1;
  }
  return 0;
}

struct SlistFree {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using Slist = std::unique_ptr<curl_slist, SlistFree>;

class S3Store : public ObjectStore {
 public:
  S3Store(StoreOptions options, s3::Target target, s3::Credentials credentials)
      : options_(std::move(options)),
        target_(std::move(target)),
        credentials_(std::move(credentials)),
        sigv4_("aws:amz:" + options_.region + ":s3"),
        rng_(std::random_device{}()) {}

  ~S3Store() override {
    for (CURL* handle : idle_) curl_easy_cleanup(handle);
  }

  std::string Describe() const override { return target_.Describe(); }

  Status Put(const std::string& key, std::span<const uint8_t> body) override {
    REPLBOOT_RETURN_STATUS_IF_ERROR(CheckKey(key));
    auto r = Execute(Request{.method = "PUT", .key = key, .url = target_.Url(key), .body = body}, "put");
    return r ? Status::Ok() : r.error();
  }

  Result<bool> PutIfAbsent(const std::string& key, std::span<const uint8_t> body) override {
    REPLBOOT_RETURN_IF_ERROR(CheckKey(key));
    auto r = Execute(
        Request{.method = "PUT", .key = key, .url = target_.Url(key), .body = body, .if_none_match = true},
        "put-if-absent");
    if (!r) return Error(r.error());
    if (!r->precondition_failed) return true;
    if (!r->maybe_written) return false;
    // An earlier attempt may have stored the object and lost only the answer: then the 412
    // is our own write. It is ours when the stored bytes are ours (a writer that wants to
    // tell two identical bodies apart puts its name in them).
    auto stored = Get(key, body.size());
    if (!stored) {
      if (stored.error().code() == StatusCode::kCorruption) return false;  // bigger: not ours
      return Error(stored.error().WithContext("put-if-absent: after a retried write"));
    }
    return std::equal(stored->begin(), stored->end(), body.begin(), body.end());
  }

  Result<std::vector<uint8_t>> Get(const std::string& key, uint64_t max_bytes) override {
    REPLBOOT_RETURN_IF_ERROR(CheckKey(key));
    auto r = Execute(
        Request{.method = "GET", .key = key, .url = target_.Url(key), .max_body = max_bytes}, "get");
    if (!r) return Error(r.error());
    return std::move(r->body);
  }

  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override {
    if (prefix.find('\0') != std::string::npos || prefix.starts_with('/')) {
      return Error(StatusCode::kInvalidArgument, "list in {}: bad prefix {}", Describe(),
                   Printable(prefix));
    }
    const std::string full_prefix = target_.prefix + prefix;
    std::vector<ObjectInfo> out;
    std::string token;
    std::string last_key;
    int empty_pages = 0;
    for (;;) {
      std::map<std::string, std::string> query{
          {"list-type", "2"},
          {"max-keys", std::to_string(std::clamp(options_.list_page_size, 1, 1000))}};
      if (!full_prefix.empty()) query["prefix"] = full_prefix;
      if (!token.empty()) query["continuation-token"] = token;
      auto r = Execute(Request{.method = "GET", .key = prefix, .url = target_.Url("", query),
                               .max_body = kMaxListBody},
                       "list");
      if (!r) return Error(r.error());
      auto page = s3::ParseListPage(
          std::string_view(reinterpret_cast<const char*>(r->body.data()), r->body.size()));
      if (!page) return Error(page.error().WithContext("list " + prefix + " in " + Describe()));
      for (auto& object : page->objects) {
        // A service that answers out of order or outside the prefix could make us loop or
        // hand out keys that are not ours.
        if (!object.key.starts_with(full_prefix) || object.key <= last_key) {
          return Error(StatusCode::kCorruption,
                       "list {} in {}: the answer has key {} out of order or outside the prefix",
                       prefix, Describe(), Printable(object.key));
        }
        last_key = object.key;
        std::string relative = object.key.substr(target_.prefix.size());
        if (relative.empty()) continue;  // a "directory" object named like the prefix
        out.push_back(ObjectInfo{std::move(relative), object.size});
      }
      if (out.size() > kMaxListedObjects) {
        return Error(StatusCode::kCorruption, "list {} in {}: more than {} objects", prefix,
                     Describe(), kMaxListedObjects);
      }
      if (!page->truncated) break;
      empty_pages = page->objects.empty() ? empty_pages + 1 : 0;
      if (page->next_token == token || empty_pages > kMaxEmptyPages) {
        return Error(StatusCode::kCorruption,
                     "list {} in {}: the service keeps paging without progress", prefix,
                     Describe());
      }
      token = std::move(page->next_token);
    }
    return out;
  }

  Status Delete(const std::string& key) override {
    REPLBOOT_RETURN_STATUS_IF_ERROR(CheckKey(key));
    auto r = Execute(
        Request{.method = "DELETE", .key = key, .url = target_.Url(key), .not_found_ok = true},
        "delete");
    return r ? Status::Ok() : r.error();
  }

 private:
  struct Request {
    const char* method = "GET";
    std::string key;  // for messages
    std::string url;
    std::span<const uint8_t> body = {};
    bool if_none_match = false;
    uint64_t max_body = 0;
    bool not_found_ok = false;  // DELETE of an absent key (never an absent bucket)
  };
  struct Response {
    std::vector<uint8_t> body;
    bool precondition_failed = false;  // 412 to If-None-Match
    bool maybe_written = false;        // an earlier attempt's body may have been stored
  };

  CURL* Acquire() {
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        CURL* handle = idle_.back();
        idle_.pop_back();
        return handle;
      }
    }
    return curl_easy_init();
  }
  // Kept handles keep their connections (and TLS sessions) for the next request.
  void Release(CURL* handle) {
    std::lock_guard lock(mu_);
    if (idle_.size() < 4) {
      idle_.push_back(handle);
    } else {
      curl_easy_cleanup(handle);
    }
  }

  // One attempt: Verdict for the outcome, the body in `t`.
  Verdict Attempt(CURL* h, const Request& req, const std::string& payload_hash, Transfer& t) {
    curl_easy_reset(h);
    char error_buffer[CURL_ERROR_SIZE] = {0};
    std::vector<std::string> header_lines{"x-amz-content-sha256: " + payload_hash};
    if (std::strcmp(req.method, "PUT") == 0) {
      header_lines.emplace_back("Content-Type: application/octet-stream");
    }
    if (req.if_none_match) header_lines.emplace_back("If-None-Match: *");
    if (!credentials_.session_token.empty()) {
      header_lines.push_back("x-amz-security-token: " + credentials_.session_token);
    }
    Slist headers;
    for (const auto& line : header_lines) {
      curl_slist* next = curl_slist_append(headers.get(), line.c_str());
      if (next == nullptr) return Verdict{false, StatusCode::kInternal, false, false, "out of memory"};
      headers.release();
      headers.reset(next);
    }
    curl_easy_setopt(h, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout.count()));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options_.connect_timeout.count()));
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!options_.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, options_.ca_file.c_str());
    curl_easy_setopt(h, CURLOPT_USERAGENT, "replboot");
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4_.c_str());
    curl_easy_setopt(h, CURLOPT_USERNAME, credentials_.access_key_id.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, credentials_.secret_access_key.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &OnHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &OnBody);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &OnProgress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
    if (std::strcmp(req.method, "PUT") == 0) {
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_READFUNCTION, &OnRead);
      curl_easy_setopt(h, CURLOPT_READDATA, &t);
      curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, &OnSeek);
      curl_easy_setopt(h, CURLOPT_SEEKDATA, &t);
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    } else if (std::strcmp(req.method, "DELETE") == 0) {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    const CURLcode rc = curl_easy_perform(h);
    if (t.cancelled) return Verdict{false, StatusCode::kCancelled, false, false, "stopped"};
    if (t.too_large) {
      return Verdict{false, StatusCode::kCorruption, false, false,
                     t.has_length ? fmt::format("the object is {} bytes, over the {} allowed",
                                                t.length, t.max_body)
                                  : fmt::format("the object is over the {} bytes allowed",
                                                t.max_body)};
    }
    if (rc != CURLE_OK) return s3::ClassifyCurl(rc, error_buffer);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (Is2xx(status)) {
      if (t.bad_length) {
        return Verdict{false, StatusCode::kCorruption, false, false, "a bad Content-Length"};
      }
      return Verdict{};
    }
    auto doc = s3::ParseErrorDoc(
        std::string_view(reinterpret_cast<const char*>(t.body.data()), t.body.size()));
    Verdict v = s3::ClassifyHttp(status, doc.code);
    if (!doc.message.empty()) v.cause += " (" + Printable(doc.message, 160) + ")";
    return v;
  }

  Result<Response> Execute(const Request& req, const char* op) {
    const std::string what = fmt::format("{} {} in {}", op, Printable(req.key), Describe());
    const std::string payload_hash = req.body.empty() ? kEmptySha256 : s3::Sha256Hex(req.body);
    Response response;
    Verdict last;
    int attempt = 0;
    for (attempt = 1; attempt <= std::max(options_.max_attempts, 1); ++attempt) {
      if (options_.stop.stop_requested()) {
        return Error(StatusCode::kCancelled, "{}: stopped", what);
      }
      Transfer t;
      t.upload = req.body;
      t.max_body = req.max_body;
      t.stop = options_.stop;
      CURL* handle = Acquire();
      if (handle == nullptr) return Error(StatusCode::kInternal, "{}: curl_easy_init failed", what);
      last = Attempt(handle, req, payload_hash, t);
      Release(handle);
      if (last.code == StatusCode::kOk) {
        response.body = std::move(t.body);
        return response;
      }
      if (last.precondition_failed && req.if_none_match) {
        response.precondition_failed = true;
        return response;
      }
      if (last.code == StatusCode::kCancelled) return Error(StatusCode::kCancelled, "{}: stopped", what);
      if (last.no_such_bucket) {
        return Error(StatusCode::kNotFound, "{}: bucket {} does not exist at {}", what,
                     target_.bucket, target_.endpoint.ToString());
      }
      if (last.code == StatusCode::kNotFound && req.not_found_ok) return response;
      if (!last.retry) {
        return Error(last.code, "{}: {}{}", what, last.cause,
                     attempt > 1 ? fmt::format(" (attempt {})", attempt) : "");
      }
      // A transport failure after the upload started, or a 5xx, may have stored the body.
      if (!req.body.empty()) response.maybe_written = true;
      if (attempt >= options_.max_attempts) break;
      std::chrono::milliseconds delay;
      {
        std::lock_guard lock(mu_);
        delay = s3::Backoff(attempt, options_.first_backoff, options_.max_backoff, rng_);
      }
      if (!SleepUnlessStopped(delay)) return Error(StatusCode::kCancelled, "{}: stopped", what);
    }
    return Error(last.code, "{}: gave up after {} attempts, last: {}", what,
                 std::min(attempt, std::max(options_.max_attempts, 1)), last.cause);
  }

  // False when the stop token ended the wait.
  bool SleepUnlessStopped(std::chrono::milliseconds delay) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    cv.wait_for(lock, options_.stop, delay, [] { return false; });
    return !options_.stop.stop_requested();
  }

  const StoreOptions options_;
  const s3::Target target_;
  const s3::Credentials credentials_;
  const std::string sigv4_;
  std::mutex mu_;
  std::vector<CURL*> idle_;
  std::mt19937_64 rng_;
};

}  // namespace

Result<std::unique_ptr<ObjectStore>> OpenS3Store(const StoreOptions& options) {
  auto target = s3::MakeTarget(options);
  if (!target) return Error(target.error());
  if (options.max_attempts < 1 || options.max_attempts > 100) {
    return Error(StatusCode::kInvalidArgument, "S3 store {}: max_attempts {} is not in 1..100",
                 target->Describe(), options.max_attempts);
  }
  if (options.list_page_size < 1 || options.list_page_size > 1000) {
    return Error(StatusCode::kInvalidArgument, "S3 store {}: list_page_size {} is not in 1..1000",
                 target->Describe(), options.list_page_size);
  }
  if (options.request_timeout.count() <= 0 || options.connect_timeout.count() <= 0 ||
      options.first_backoff.count() < 0 || options.max_backoff < options.first_backoff) {
    return Error(StatusCode::kInvalidArgument,
                 "S3 store {}: timeouts must be > 0 and max_backoff >= first_backoff >= 0",
                 target->Describe());
  }
  if (!options.ca_file.empty()) {
    auto ca = files::ReadFile(options.ca_file);
    if (!ca) return Error(ca.error().WithContext("S3 store " + target->Describe() + ": CA file"));
  }
  auto credentials = s3::LoadCredentials(options, [](const char* name) -> const char* { return std::getenv(name); });
  if (!credentials) {
    return Error(credentials.error().WithContext("S3 store " + target->Describe()));
  }
  if (!CurlReady()) {
    return Error(StatusCode::kInternal, "S3 store {}: curl_global_init failed", target->Describe());
  }
  return std::unique_ptr<ObjectStore>(
      new S3Store(options, std::move(*target), std::move(*credentials)));
}

}  // namespace replboot::store
