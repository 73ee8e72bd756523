// Object stores a backup lives in: a mounted volume (file:///path) or any S3-compatible service
// (s3://bucket/prefix). Objects are whole and bounded (archive/ cuts a backup into many), so
// every call moves one object in one request: no multipart upload, no part limit.
//
// Errors name the store, the key and the reason, with a code a caller can branch on:
//   kPermissionDenied  403 / bad signature / unknown key id, EACCES
//   kNotFound          no such key; no such bucket or directory (the message says which)
//   kNoSpace           ENOSPC/EDQUOT, 507, QuotaExceeded, EntityTooLarge
//   kUnavailable       5xx, 429/SlowDown, a reset or refused connection, after every retry
//   kTimeout           the request's deadline, after every retry
//   kCorruption        an answer that cannot be parsed, an object over `max_bytes`
//   kInvalidArgument   a bad URL or option (OpenStore), a key with `..`, NUL or a leading '/'
// Retries (with backoff) are inside the store and cover only what may pass: 5xx, 429,
// timeouts, resets. Nothing a store returns or logs contains a credential.
#ifndef REPLBOOT_STORE_OBJECT_STORE_H_
#define REPLBOOT_STORE_OBJECT_STORE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <stop_token>
#include <string>
#include <vector>

#include "replboot/base/status.h"

namespace replboot::store {

struct ObjectInfo {
  std::string key;  // relative to the store's prefix
  uint64_t size = 0;
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  // "s3://bucket/prefix at http://127.0.0.1:5000" or "file:///backups": for logs and errors.
  virtual std::string Describe() const = 0;
  // Writes the whole object: a reader sees the old object or all of the new one, never part.
  virtual Status Put(const std::string& key, std::span<const uint8_t> body) = 0;
  // Writes only when no object has `key` (S3 `If-None-Match: *`, link(2) on a volume):
  // true when written, false when one was there. Two callers never both get true.
  virtual Result<bool> PutIfAbsent(const std::string& key, std::span<const uint8_t> body) = 0;
  // The whole object; kNotFound when absent; kCorruption when it is over `max_bytes` (not read
  // whole: a hostile store cannot make us hold more).
  virtual Result<std::vector<uint8_t>> Get(const std::string& key, uint64_t max_bytes) = 0;
  // Every key under `prefix` (a plain string prefix of the key), sorted by key, with sizes;
  // paged internally. An empty store or prefix is an empty list, not an error.
  virtual Result<std::vector<ObjectInfo>> List(const std::string& prefix) = 0;
  // Removes the object; an absent key is ok.
  virtual Status Delete(const std::string& key) = 0;
};

struct StoreOptions {
  // file:///absolute/path | s3://bucket[/prefix]
  std::string url;
  // s3 only. "" = AWS (https://s3.<region>.amazonaws.com); else e.g. http://127.0.0.1:5000.
  std::string endpoint;
  std::string region = "us-east-1";
  // kAuto: path-style when `endpoint` is set (most S3-compatible services), virtual-host on AWS.
  enum class Addressing { kAuto, kPath, kVirtualHost };
  Addressing addressing = Addressing::kAuto;
  std::string ca_file;  // TLS: verify the endpoint against this CA ("" = the system's)
  // Credentials from files (a Kubernetes Secret mount), read once at OpenStore; when
  // access_key_file is "", AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN from
  // replboot's environment (never passed on to a child: base/process ChildEnvironment).
  std::string access_key_file;
  std::string secret_key_file;
  std::string session_token_file;
  std::chrono::milliseconds connect_timeout{5'000};
  // One deadline per request attempt, the whole exchange (not per read).
  std::chrono::milliseconds request_timeout{120'000};
  int max_attempts = 5;
  std::chrono::milliseconds first_backoff{500};
  std::chrono::milliseconds max_backoff{8'000};
  // s3 only: keys per ListObjectsV2 page (max-keys), 1..1000; S3's own maximum is 1000.
  int list_page_size = 1000;
  // Ends retries and backoff waits early (shutdown), with kCancelled.
  std::stop_token stop;
};

// Opens (and for a file store creates) the store; checks the URL and reads credentials.
// Does not contact the service: the first call does, and names what is wrong.
Result<std::unique_ptr<ObjectStore>> OpenStore(const StoreOptions& options);

// A store in memory, for tests of the layers above (thread-safe).
std::unique_ptr<ObjectStore> MakeMemoryStore();

// Checks a key: non-empty, no NUL, no leading '/', no "." or ".." component, no "//".
Status CheckKey(const std::string& key);

}  // namespace replboot::store

#endif  // REPLBOOT_STORE_OBJECT_STORE_H_
