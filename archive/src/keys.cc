#include "replboot/archive/keys.h"

#include <algorithm>
#include <cctype>
#include <span>

#include "crypto.h"
#include "replboot/base/files.h"

namespace replboot::archive {
namespace {

constexpr std::string_view kKeyInfo = "replboot backup encryption v1";
constexpr std::string_view kIdInfo = "replboot backup encryption v1: key id";

// Words that say "put the real secret here". Matched case-insensitively anywhere in the
// text: generated secrets (hex, base64) do not contain them by chance.
constexpr std::string_view kPlaceholders[] = {
    "changeme",   "change-me",  "change_me", "changeit", "placeholder", "replaceme",
    "replace-me", "replace_me", "your-key",  "yourkey",  "secret-here"};

// One character repeated, or a short unit repeated ("abcabcabc…", "changemechangeme…",
// "0123456701234567…"): text somebody typed, not generated.
bool IsRepetition(std::string_view text) {
  for (size_t unit = 1; unit <= 8 && unit < text.size(); ++unit) {
    bool repeats = true;
    for (size_t i = unit; i < text.size() && repeats; ++i) repeats = text[i] == text[i - unit];
    if (repeats) return true;
  }
  return false;
}

bool HasPlaceholder(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return std::any_of(std::begin(kPlaceholders), std::end(kPlaceholders),
                     [&](std::string_view word) { return lower.find(word) != std::string::npos; });
}

}  // namespace

BackupKey KeyFromSecret(std::string_view secret) {
  BackupKey key;
  internal::Hkdf(std::span(reinterpret_cast<const uint8_t*>(secret.data()), secret.size()),
                 kKeyInfo, key.bytes);
  uint8_t id[8];
  internal::Hkdf(key.bytes, kIdInfo, id);
  key.id = internal::Hex(id);
  return key;
}

Result<BackupKey> LoadKeyFile(const std::string& path) {
  auto content = files::ReadFile(path);
  if (!content) return Error(content.error().WithContext("backup key file"));
  std::string_view text = *content;
  if (text.ends_with('\n')) text.remove_suffix(1);
  if (text.ends_with('\r')) text.remove_suffix(1);
  const std::string hint = fmt::format("(make one with: openssl rand -hex 32 > {})", path);
  if (text.empty()) {
    return Error(StatusCode::kInvalidArgument, "backup key file {} is empty {}", path, hint);
  }
  if (text.size() < kMinSecretChars) {
    return Error(StatusCode::kInvalidArgument,
                 "backup key file {} holds {} characters, at least {} are needed {}", path,
                 text.size(), kMinSecretChars, hint);
  }
  if (text.size() > kMaxSecretChars) {
    return Error(StatusCode::kInvalidArgument,
                 "backup key file {} holds {} bytes; it should hold one line of secret text of "
                 "at most {} characters",
                 path, content->size(), kMaxSecretChars);
  }
  if (text.find('\n') != std::string_view::npos || text.find('\0') != std::string_view::npos) {
    return Error(StatusCode::kInvalidArgument,
                 "backup key file {} holds more than one line; it should hold one line of secret "
                 "text {}",
                 path, hint);
  }
  if (IsRepetition(text) || HasPlaceholder(text)) {
    return Error(StatusCode::kInvalidArgument,
                 "backup key file {} holds a placeholder, not a secret {}", path, hint);
  }
  return KeyFromSecret(text);
}

}  // namespace replboot::archive
