#include "crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/sha.h>

#include <cstdio>
#include <cstdlib>

namespace replboot::archive::internal {

void Hkdf(std::span<const uint8_t> ikm, std::string_view info, std::span<uint8_t> out) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  EVP_KDF_CTX* ctx = kdf != nullptr ? EVP_KDF_CTX_new(kdf) : nullptr;
  EVP_KDF_free(kdf);
  // OSSL_PARAM wants non-const pointers; nothing is written through them.
  char digest[] = "SHA256";
  // HKDF refuses an empty key; a secret is never empty (LoadKeyFile checks), but
  // KeyFromSecret("") of a test must still give a key, so a fixed byte stands for "nothing".
  static const uint8_t kEmpty[1] = {0};
  void* key = ikm.empty() ? const_cast<uint8_t*>(kEmpty) : const_cast<uint8_t*>(ikm.data());
  size_t key_len = ikm.empty() ? sizeof kEmpty : ikm.size();
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, key, key_len),
                         OSSL_PARAM_construct_octet_string(
                             OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size()),
                         OSSL_PARAM_construct_end()};
  bool ok = ctx != nullptr && EVP_KDF_derive(ctx, out.data(), out.size(), params) == 1;
  EVP_KDF_CTX_free(ctx);
  if (!ok) {
    // No HKDF means no OpenSSL default provider: no key could be derived, and carrying on
    // with an all-zero key would be worse than stopping.
    std::fputs("replboot: OpenSSL HKDF-SHA256 is unavailable\n", stderr);
    std::abort();
  }
}

namespace {

Key32 Subkey(const BackupKey& key, std::string_view info) {
  Key32 out{};
  Hkdf(key.bytes, info, out);
  return out;
}

}  // namespace

Key32 ObjectKey(const BackupKey& key) {
  return Subkey(key, "replboot backup encryption v1: object AES-256-GCM");
}

Key32 MacKey(const BackupKey& key) {
  return Subkey(key, "replboot backup encryption v1: manifest HMAC-SHA256");
}

std::string HmacSha256Hex(const Key32& key, std::string_view data) {
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const uint8_t*>(data.data()), data.size(), mac, &length);
  return Hex(std::span<const uint8_t>(mac, length));
}

std::string Sha256Hex(std::span<const uint8_t> data) {
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(data.data(), data.size(), digest);
  return Hex(digest);
}

std::string Hex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

bool IsLowerHex(std::string_view text, size_t length) {
  if (text.size() != length) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace replboot::archive::internal
