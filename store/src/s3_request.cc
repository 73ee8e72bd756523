#include "s3_request.h"

#include <openssl/evp.h>

#include <charconv>

#include "replboot/base/files.h"
#include "store_internal.h"

namespace replboot::store::s3 {

namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLowerAlnum(char c) { return IsDigit(c) || (c >= 'a' && c <= 'z'); }

bool LooksLikeIpv4(std::string_view name) {
  int dots = 0;
  for (char c : name) {
    if (c == '.') {
      ++dots;
    } else if (!IsDigit(c)) {
      return false;
    }
  }
  return dots == 3;
}

// A host name or IPv4 address: labels of letters, digits, '-' and '_'; or [IPv6].
bool ValidHost(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return false;
    for (char c : host.substr(1, host.size() - 2)) {
      if (!(IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
            c == '.')) {
        return false;
      }
    }
    return true;
  }
  if (host.front() == '.' || host.back() == '.' || host.find("..") != std::string_view::npos) {
    return false;
  }
  for (char c : host) {
    if (!(IsLowerAlnum(c) || (c >= 'A' && c <= 'Z') || c == '-' || c == '.' || c == '_')) {
      return false;
    }
  }
  return true;
}

bool ValidRegion(std::string_view region) {
  if (region.empty() || region.size() > 32) return false;
  for (char c : region) {
    if (!(IsLowerAlnum(c) || c == '-')) return false;
  }
  return true;
}

// A credential's text: one trailing newline dropped, any other control character refused.
Result<std::string> CleanSecret(std::string text, const std::string& what) {
  if (text.ends_with("\r\n")) {
    text.resize(text.size() - 2);
  } else if (text.ends_with('\n')) {
    text.pop_back();
  }
  if (text.empty()) return Error(StatusCode::kInvalidArgument, "{} is empty", what);
  if (text.size() > 4096) return Error(StatusCode::kInvalidArgument, "{} is too long", what);
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      return Error(StatusCode::kInvalidArgument,
                   "{} contains a control character (only one trailing newline is allowed)",
                   what);
    }
  }
  return text;
}

Result<std::string> SecretFromFile(const std::string& path, const std::string& what) {
  auto text = files::ReadFile(path);
  if (!text) return Error(text.error().WithContext("read the " + what));
  return CleanSecret(std::move(*text), "the " + what + " " + path);
}

Result<std::string> SecretFromEnv(GetEnv getenv_fn, const char* name) {
  const char* value = getenv_fn(name);
  if (value == nullptr) return std::string();
  return CleanSecret(value, std::string(name));
}

}  // namespace

bool ParseUint64(std::string_view text, uint64_t* value) {
  if (text.empty() || text.size() > 20) return false;
  for (char c : text) {
    if (!IsDigit(c)) return false;
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return ec == std::errc() && end == text.data() + text.size();
}

bool ValidBucketName(std::string_view name) {
  if (name.size() < 3 || name.size() > 63) return false;
  if (!IsLowerAlnum(name.front()) || !IsLowerAlnum(name.back())) return false;
  for (char c : name) {
    if (!(IsLowerAlnum(c) || c == '.' || c == '-')) return false;
  }
  return name.find("..") == std::string_view::npos && !LooksLikeIpv4(name);
}

Result<S3Url> ParseS3Url(const std::string& url) {
  constexpr std::string_view kScheme = "s3://";
  if (!std::string_view(url).starts_with(kScheme)) {
    return Error(StatusCode::kInvalidArgument, "store URL {}: not s3://bucket[/prefix]",
                 Printable(url));
  }
  std::string_view rest = std::string_view(url).substr(kScheme.size());
  S3Url out;
  const size_t slash = rest.find('/');
  out.bucket = std::string(rest.substr(0, slash));
  if (!ValidBucketName(out.bucket)) {
    return Error(StatusCode::kInvalidArgument,
                 "store URL {}: {} is not an S3 bucket name (3-63 of a-z 0-9 . -)",
                 Printable(url), Printable(out.bucket));
  }
  if (slash != std::string_view::npos) {
    std::string prefix(rest.substr(slash + 1));
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    if (!prefix.empty()) {
      if (Status s = CheckKey(prefix); !s.ok()) {
        return Error(StatusCode::kInvalidArgument, "store URL {}: prefix: {}", Printable(url),
                     s.message());
      }
      out.prefix = prefix + "/";
    }
  }
  return out;
}

std::string Endpoint::ToString() const {
  return scheme + "://" + host + (port.empty() ? "" : ":" + port);
}

Result<Endpoint> ParseEndpoint(const std::string& text) {
  Endpoint out;
  std::string_view rest(text);
  if (rest.starts_with("https://")) {
    out.scheme = "https";
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    out.scheme = "http";
    rest.remove_prefix(7);
  } else {
    return Error(StatusCode::kInvalidArgument, "S3 endpoint {}: not http:// or https://",
                 Printable(text));
  }
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos) {
    return Error(StatusCode::kInvalidArgument,
                 "S3 endpoint {}: only scheme://host[:port] (no path, query or user)",
                 Printable(text));
  }
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && rest.find(']', colon) == std::string_view::npos) {
    out.port = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    uint64_t port = 0;
    if (!ParseUint64(out.port, &port) || port == 0 || port > 65535) {
      return Error(StatusCode::kInvalidArgument, "S3 endpoint {}: bad port", Printable(text));
    }
  }
  out.host = std::string(rest);
  if (!ValidHost(out.host)) {
    return Error(StatusCode::kInvalidArgument, "S3 endpoint {}: bad host", Printable(text));
  }
  return out;
}

std::string UriEncode(std::string_view text, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

std::string Target::Url(std::string_view key, const std::map<std::string, std::string>& query) const {
  std::string url = endpoint.scheme + "://";
  if (path_style) {
    url += endpoint.host + (endpoint.port.empty() ? "" : ":" + endpoint.port) + "/" + bucket;
    if (!key.empty()) url += "/" + UriEncode(prefix + std::string(key), true);
  } else {
    url += bucket + "." + endpoint.host + (endpoint.port.empty() ? "" : ":" + endpoint.port) + "/";
    if (!key.empty()) url += UriEncode(prefix + std::string(key), true);
  }
  char sep = '?';
  for (const auto& [name, value] : query) {  // std::map: sorted by name, as SigV4 wants
    url += sep;
    url += UriEncode(name, false) + "=" + UriEncode(value, false);
    sep = '&';
  }
  return url;
}

std::string Target::Describe() const {
  std::string prefix_part = prefix.empty() ? "" : "/" + prefix.substr(0, prefix.size() - 1);
  return "s3://" + bucket + prefix_part + " at " + endpoint.ToString();
}

Result<Target> MakeTarget(const StoreOptions& options) {
  auto url = ParseS3Url(options.url);
  if (!url) return Error(url.error());
  if (!ValidRegion(options.region)) {
    return Error(StatusCode::kInvalidArgument, "S3 region {}: not a region name (a-z 0-9 -)",
                 Printable(options.region));
  }
  Target target;
  target.bucket = url->bucket;
  target.prefix = url->prefix;
  const bool aws = options.endpoint.empty();
  auto endpoint = ParseEndpoint(aws ? "https://s3." + options.region + ".amazonaws.com"
                                    : options.endpoint);
  if (!endpoint) return Error(endpoint.error());
  target.endpoint = *endpoint;
  switch (options.addressing) {
    case StoreOptions::Addressing::kAuto: target.path_style = !aws; break;
    case StoreOptions::Addressing::kPath: target.path_style = true; break;
    case StoreOptions::Addressing::kVirtualHost: target.path_style = false; break;
  }
  if (!target.path_style) {
    if (target.endpoint.host.front() == '[' || LooksLikeIpv4(target.endpoint.host)) {
      return Error(StatusCode::kInvalidArgument,
                   "S3 endpoint {}: virtual-host addressing needs a host name, not an address "
                   "(use path-style)",
                   target.endpoint.ToString());
    }
    // A dot in the bucket would add a label the TLS certificate's wildcard (*.s3...) does
    // not cover.
    if (target.endpoint.scheme == "https" && target.bucket.find('.') != std::string::npos) {
      return Error(StatusCode::kInvalidArgument,
                   "bucket {}: a name with '.' cannot be used with virtual-host addressing over "
                   "https (the certificate does not cover it); use path-style",
                   target.bucket);
    }
  }
  return target;
}

Result<Credentials> LoadCredentials(const StoreOptions& options, GetEnv getenv_fn) {
  Credentials out;
  if (!options.access_key_file.empty()) {
    if (options.secret_key_file.empty()) {
      return Error(StatusCode::kInvalidArgument,
                   "S3 credentials: access_key_file is set but secret_key_file is not");
    }
    auto id = SecretFromFile(options.access_key_file, "S3 access key file");
    if (!id) return Error(id.error());
    auto secret = SecretFromFile(options.secret_key_file, "S3 secret key file");
    if (!secret) return Error(secret.error());
    out.access_key_id = std::move(*id);
    out.secret_access_key = std::move(*secret);
    if (!options.session_token_file.empty()) {
      auto token = SecretFromFile(options.session_token_file, "S3 session token file");
      if (!token) return Error(token.error());
      out.session_token = std::move(*token);
    }
    return out;
  }
  if (!options.secret_key_file.empty() || !options.session_token_file.empty()) {
    return Error(StatusCode::kInvalidArgument,
                 "S3 credentials: secret_key_file/session_token_file need access_key_file");
  }
  auto id = SecretFromEnv(getenv_fn, "AWS_ACCESS_KEY_ID");
  if (!id) return Error(id.error());
  auto secret = SecretFromEnv(getenv_fn, "AWS_SECRET_ACCESS_KEY");
  if (!secret) return Error(secret.error());
  auto token = SecretFromEnv(getenv_fn, "AWS_SESSION_TOKEN");
  if (!token) return Error(token.error());
  if (id->empty() || secret->empty()) {
    return Error(StatusCode::kInvalidArgument,
                 "S3 credentials: set access_key_file and secret_key_file, or "
                 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({} is missing)",
                 id->empty() ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY");
  }
  out.access_key_id = std::move(*id);
  out.secret_access_key = std::move(*secret);
  out.session_token = std::move(*token);
  return out;
}

std::string Sha256Hex(std::span<const uint8_t> data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

}  // namespace replboot::store::s3
