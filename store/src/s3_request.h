// The pure parts of an S3 request: the URL, the endpoint, the addressing style, SigV4's URI
// encoding and the credentials. No network here; s3_request_test.cc covers it all.
#ifndef REPLBOOT_STORE_S3_REQUEST_H_
#define REPLBOOT_STORE_S3_REQUEST_H_

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "replboot/base/status.h"
#include "replboot/store/object_store.h"

namespace replboot::store::s3 {

// s3://bucket[/prefix]: the prefix is "" or ends with '/' (s3://b/backups holds keys under
// "backups/").
struct S3Url {
  std::string bucket;
  std::string prefix;
};
Result<S3Url> ParseS3Url(const std::string& url);

// S3's bucket naming rules (3-63 of a-z 0-9 . -, starting and ending with a letter or digit,
// no "..", not an IPv4 address): a name that is not one never reaches a URL.
bool ValidBucketName(std::string_view name);

// scheme://host[:port] with scheme http or https; nothing else (no user, path, query).
struct Endpoint {
  std::string scheme;  // "http" | "https"
  std::string host;    // a name, an IPv4 address or [an IPv6 address]
  std::string port;    // "" = the scheme's
  std::string ToString() const;  // "http://127.0.0.1:5000"
};
Result<Endpoint> ParseEndpoint(const std::string& text);

// SigV4's UriEncode: every byte but A-Z a-z 0-9 - . _ ~ (and '/' when `keep_slash`) as %XX
// with upper-case hex. curl 7.88 signs the path and query exactly as they appear in the URL,
// so the URL must already be in this canonical form.
std::string UriEncode(std::string_view text, bool keep_slash);

// Where a bucket's objects are: the base URL ("http://127.0.0.1:5000/bucket" path-style,
// "https://bucket.s3.eu-west-1.amazonaws.com" virtual-host) and what Describe() says.
struct Target {
  Endpoint endpoint;
  std::string bucket;
  std::string prefix;
  bool path_style = true;
  // The URL of an object ("" key: the bucket itself), with `query` (names and values as
  // they are, encoded here) sorted by name as SigV4 requires of the canonical query.
  std::string Url(std::string_view key, const std::map<std::string, std::string>& query = {}) const;
  std::string Describe() const;  // "s3://bucket/prefix at http://127.0.0.1:5000"
};
Result<Target> MakeTarget(const StoreOptions& options);

// Credentials read once. The secret and token are never formatted anywhere.
struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // "" = none
};
// From the files named in `options`, else from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
// AWS_SESSION_TOKEN through `getenv` (a seam for tests). A file's single trailing newline
// ("\n" or "\r\n") is dropped; any other control character is an error (it would end a
// header line). Errors name the file or the variable, never a value.
using GetEnv = const char* (*)(const char*);
Result<Credentials> LoadCredentials(const StoreOptions& options, GetEnv getenv_fn);

// The hex SHA-256 of `data` (x-amz-content-sha256).
std::string Sha256Hex(std::span<const uint8_t> data);

// Strict decimal uint64: digits only, no sign, no spaces, no overflow, at most 20 digits.
bool ParseUint64(std::string_view text, uint64_t* value);

}  // namespace replboot::store::s3

#endif  // REPLBOOT_STORE_S3_REQUEST_H_
