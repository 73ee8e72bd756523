#include "replboot/archive/object.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <zstd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <string>

#include "crypto.h"
#include "object_internal.h"

namespace replboot::archive {
namespace {

constexpr uint8_t kMagic[4] = {'R', 'B', 'A', 'O'};
constexpr uint8_t kVersion = 1;
constexpr size_t kLogicalOffset = 5;
constexpr size_t kNonceOffset = 13;
constexpr size_t kNonceBytes = 12;
static_assert(kNonceOffset + kNonceBytes == kObjectHeaderBytes);

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

// zstd contexts are reused per thread: a fresh one per 16 MiB object would allocate and
// initialise its tables every time. One writer or reader worker is one thread.
struct ZstdContexts {
  ZSTD_CCtx* cctx = nullptr;
  ZSTD_DCtx* dctx = nullptr;
  ~ZstdContexts() {
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
  }
};
thread_local ZstdContexts zstd_contexts;

void PutLe64(uint8_t* out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(value >> (8 * i));
}
uint64_t GetLe64(const uint8_t* in) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | in[i];
  return value;
}

// What the tag binds besides the ciphertext: the header's magic, version and logical size,
// then the length-prefixed backup id and the index, so no field can be moved into another.
std::string Aad(std::string_view backup_id, uint64_t index, uint64_t logical) {
  std::string aad(reinterpret_cast<const char*>(kMagic), sizeof kMagic);
  aad.push_back(static_cast<char>(kVersion));
  uint8_t number[8];
  PutLe64(number, logical);
  aad.append(reinterpret_cast<const char*>(number), 8);
  PutLe64(number, backup_id.size());
  aad.append(reinterpret_cast<const char*>(number), 8);
  aad.append(backup_id);
  PutLe64(number, index);
  aad.append(reinterpret_cast<const char*>(number), 8);
  return aad;
}

// EVP's lengths are int: feed large buffers in pieces (in place: out may equal in).
bool CipherUpdate(EVP_CIPHER_CTX* ctx, bool encrypt, uint8_t* out, const uint8_t* in,
                  size_t length) {
  constexpr size_t kPiece = size_t{1} << 30;
  while (length > 0) {
    int piece = static_cast<int>(std::min(length, kPiece));
    int written = 0;
    int rc = encrypt ? EVP_EncryptUpdate(ctx, out, &written, in, piece)
                     : EVP_DecryptUpdate(ctx, out, &written, in, piece);
    if (rc != 1 || written != piece) return false;
    out += piece;
    in += piece;
    length -= static_cast<size_t>(piece);
  }
  return true;
}

bool SetAad(EVP_CIPHER_CTX* ctx, bool encrypt, const std::string& aad) {
  int written = 0;
  const auto* bytes = reinterpret_cast<const uint8_t*>(aad.data());
  int length = static_cast<int>(aad.size());
  return encrypt ? EVP_EncryptUpdate(ctx, nullptr, &written, bytes, length) == 1
                 : EVP_DecryptUpdate(ctx, nullptr, &written, bytes, length) == 1;
}

// Seals `*out`, which holds the header (magic, version, logical size, nonce) and `frame_bytes`
// of zstd frame after it, with room for the tag: encrypts the frame in place, appends the tag.
bool EncryptInPlace(const BackupKey& key, std::string_view backup_id, uint64_t index,
                    uint64_t logical, size_t frame_bytes, uint8_t* out) {
  const internal::Key32 object_key = internal::ObjectKey(key);
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  uint8_t* frame = out + kObjectHeaderBytes;
  uint8_t* tag = frame + frame_bytes;
  int final_bytes = 0;
  return ctx != nullptr &&
         EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
         EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, object_key.data(),
                            out + kNonceOffset) == 1 &&
         SetAad(ctx.get(), true, Aad(backup_id, index, logical)) &&
         CipherUpdate(ctx.get(), true, frame, frame, frame_bytes) &&
         EVP_EncryptFinal_ex(ctx.get(), tag, &final_bytes) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kObjectTagBytes, tag) == 1;
}

bool WriteHeader(uint64_t logical, uint8_t* out) {
  std::memcpy(out, kMagic, sizeof kMagic);
  out[4] = kVersion;
  PutLe64(out + kLogicalOffset, logical);
  return RAND_bytes(out + kNonceOffset, static_cast<int>(kNonceBytes)) == 1;
}

}  // namespace

namespace internal {

std::vector<uint8_t> SealFrame(const BackupKey& key, std::string_view backup_id, uint64_t index,
                               uint64_t logical, std::span<const uint8_t> frame) {
  std::vector<uint8_t> out(kObjectHeaderBytes + frame.size() + kObjectTagBytes);
  std::copy(frame.begin(), frame.end(), out.begin() + kObjectHeaderBytes);
  if (!WriteHeader(logical, out.data()) ||
      !EncryptInPlace(key, backup_id, index, logical, frame.size(), out.data())) {
    return {};
  }
  return out;
}

}  // namespace internal

uint64_t MaxStoredBytes(uint64_t logical_bytes) {
  return kObjectHeaderBytes + ZSTD_COMPRESSBOUND(logical_bytes) + kObjectTagBytes;
}

Result<size_t> internal::SealFrameInPlace(const BackupKey& key, std::string_view backup_id,
                                          uint64_t index, uint64_t logical, size_t frame_bytes,
                                          std::span<uint8_t> out) {
  auto fail = [&](std::string_view what) {
    return Error(StatusCode::kInternal, "sealing object {} of backup {}: {}", index, backup_id,
                 what);
  };
  if (frame_bytes > ZSTD_compressBound(logical) ||
      out.size() < kObjectHeaderBytes + frame_bytes + kObjectTagBytes) {
    return fail(fmt::format("a frame of {} bytes for {} logical bytes in a buffer of {}",
                            frame_bytes, logical, out.size()));
  }
  if (!WriteHeader(logical, out.data())) return fail("RAND_bytes failed: no random nonce");
  if (!EncryptInPlace(key, backup_id, index, logical, frame_bytes, out.data())) {
    return fail("AES-256-GCM encryption failed");
  }
  return kObjectHeaderBytes + frame_bytes + kObjectTagBytes;
}

Result<size_t> internal::SealObjectInto(const BackupKey& key, std::string_view backup_id,
                                        uint64_t index, std::span<const uint8_t> plaintext,
                                        int zstd_level, std::span<uint8_t> out) {
  if (zstd_level < ZSTD_minCLevel() || zstd_level > ZSTD_maxCLevel()) {
    return Error(StatusCode::kInvalidArgument, "zstd level {} is outside {}..{}", zstd_level,
                 ZSTD_minCLevel(), ZSTD_maxCLevel());
  }
  auto fail = [&](std::string_view what) {
    return Error(StatusCode::kInternal, "sealing object {} of backup {}: {}", index, backup_id,
                 what);
  };
  if (out.size() < MaxStoredBytes(plaintext.size())) {
    return fail(fmt::format("a buffer of {} bytes, {} needed", out.size(),
                            MaxStoredBytes(plaintext.size())));
  }
  if (zstd_contexts.cctx == nullptr) zstd_contexts.cctx = ZSTD_createCCtx();
  if (zstd_contexts.cctx == nullptr) return fail("ZSTD_createCCtx failed");

  if (!WriteHeader(plaintext.size(), out.data())) {
    return fail("RAND_bytes failed: no random nonce");
  }
  const size_t bound = out.size() - kObjectHeaderBytes - kObjectTagBytes;
  size_t compressed = ZSTD_compressCCtx(zstd_contexts.cctx, out.data() + kObjectHeaderBytes, bound,
                                        plaintext.data(), plaintext.size(), zstd_level);
  if (ZSTD_isError(compressed)) return fail(std::string("zstd: ") + ZSTD_getErrorName(compressed));

  if (!EncryptInPlace(key, backup_id, index, plaintext.size(), compressed, out.data())) {
    return fail("AES-256-GCM encryption failed");
  }
  return kObjectHeaderBytes + compressed + kObjectTagBytes;
}

Result<std::vector<uint8_t>> SealObject(const BackupKey& key, std::string_view backup_id,
                                        uint64_t index, std::span<const uint8_t> plaintext,
                                        int zstd_level) {
  std::vector<uint8_t> out(MaxStoredBytes(plaintext.size()));
  auto sealed = internal::SealObjectInto(key, backup_id, index, plaintext, zstd_level, out);
  if (!sealed) return Error(sealed.error());
  out.resize(*sealed);
  return out;
}

Result<internal::OpenedFrame> internal::AuthenticateInPlace(const BackupKey& key,
                                                           std::string_view backup_id,
                                                           uint64_t index,
                                                           std::span<uint8_t> stored,
                                                           uint64_t max_logical) {
  auto corrupt = [&](std::string_view what) {
    return Error(StatusCode::kCorruption, "object {} of backup {}: {}", index, backup_id, what);
  };
  if (stored.size() < sizeof kMagic || std::memcmp(stored.data(), kMagic, sizeof kMagic) != 0) {
    return corrupt("bad magic (not a replboot backup object)");
  }
  if (stored.size() < kObjectHeaderBytes + kObjectTagBytes) {
    return corrupt(fmt::format("truncated: {} bytes, an object has at least {}", stored.size(),
                               kObjectHeaderBytes + kObjectTagBytes));
  }
  if (stored[4] != kVersion) {
    return corrupt(fmt::format("unknown object version {} (this replboot reads version {})",
                               stored[4], kVersion));
  }
  const uint64_t logical = GetLe64(stored.data() + kLogicalOffset);
  if (logical > max_logical) {
    return corrupt(fmt::format("logical size {} over the limit of {} bytes", logical, max_logical));
  }
  const size_t frame_bytes = stored.size() - kObjectHeaderBytes - kObjectTagBytes;
  if (frame_bytes > ZSTD_COMPRESSBOUND(logical)) {
    return corrupt(fmt::format("{} stored bytes, more than {} logical bytes can compress to",
                               stored.size(), logical));
  }

  // Decrypt in place and check the tag before anything reads the plaintext.
  uint8_t* frame = stored.data() + kObjectHeaderBytes;
  const internal::Key32 object_key = internal::ObjectKey(key);
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, object_key.data(),
                         stored.data() + kNonceOffset) != 1) {
    return Error(StatusCode::kInternal, "object {} of backup {}: AES-256-GCM setup failed", index,
                 backup_id);
  }
  uint8_t* tag = frame + frame_bytes;
  int final_bytes = 0;
  if (!SetAad(ctx.get(), false, Aad(backup_id, index, logical)) ||
      !CipherUpdate(ctx.get(), false, frame, frame, frame_bytes) ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kObjectTagBytes, tag) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), nullptr, &final_bytes) != 1) {
    return corrupt("authentication failed: changed, or sealed with another key");
  }

  // Authenticated: only a holder of the key made this frame. Still, it must be exactly one
  // frame declaring exactly the logical size, and decompression writes at most that much.
  const unsigned long long declared = ZSTD_getFrameContentSize(frame, frame_bytes);
  if (declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN) {
    return corrupt("zstd: not a frame with a content size");
  }
  if (declared != logical) {
    return corrupt(fmt::format("size mismatch: the zstd frame holds {} bytes, the header says {}",
                               declared, logical));
  }
  const size_t frame_size = ZSTD_findFrameCompressedSize(frame, frame_bytes);
  if (ZSTD_isError(frame_size) || frame_size != frame_bytes) {
    return corrupt("zstd: the object is not exactly one frame");
  }
  return OpenedFrame{std::span<const uint8_t>(frame, frame_bytes), logical};
}

Status internal::DecompressFrame(
    std::string_view backup_id, uint64_t index, const OpenedFrame& frame, size_t piece_bytes,
    const std::function<Status(std::span<const uint8_t>)>& sink) {
  auto corrupt = [&](std::string_view what) {
    return Status(StatusCode::kCorruption,
                  fmt::format("object {} of backup {}: {}", index, backup_id, what));
  };
  if (zstd_contexts.dctx == nullptr) zstd_contexts.dctx = ZSTD_createDCtx();
  if (zstd_contexts.dctx == nullptr) {
    return Status(StatusCode::kInternal,
                  fmt::format("object {} of backup {}: ZSTD_createDCtx failed", index, backup_id));
  }
  ZSTD_DCtx_reset(zstd_contexts.dctx, ZSTD_reset_session_only);
  std::vector<uint8_t> piece(static_cast<size_t>(
      std::min<uint64_t>(std::max<size_t>(piece_bytes, 1), std::max<uint64_t>(frame.logical, 1))));
  ZSTD_inBuffer in{frame.bytes.data(), frame.bytes.size(), 0};
  uint64_t total = 0;
  size_t hint = 1;
  while (hint != 0) {
    ZSTD_outBuffer out{piece.data(), piece.size(), 0};
    hint = ZSTD_decompressStream(zstd_contexts.dctx, &out, &in);
    if (ZSTD_isError(hint)) {
      ZSTD_DCtx_reset(zstd_contexts.dctx, ZSTD_reset_session_only);
      return corrupt(std::string("zstd: ") + ZSTD_getErrorName(hint));
    }
    total += out.pos;
    if (total > frame.logical) return corrupt("size mismatch: more bytes than the header says");
    if (out.pos > 0) REPLBOOT_RETURN_STATUS_IF_ERROR(sink(std::span(piece.data(), out.pos)));
    if (hint != 0 && in.pos == in.size && out.pos < out.size) {
      return corrupt("zstd: the frame ends early");
    }
  }
  if (total != frame.logical) {
    return corrupt(
        fmt::format("size mismatch: {} bytes decompressed, the header says {}", total,
                    frame.logical));
  }
  return Status::Ok();
}

Result<std::vector<uint8_t>> OpenObject(const BackupKey& key, std::string_view backup_id,
                                        uint64_t index, std::span<const uint8_t> stored,
                                        uint64_t max_logical) {
  // A copy of our own to decrypt in place.
  std::vector<uint8_t> own(stored.begin(), stored.end());
  auto frame = internal::AuthenticateInPlace(key, backup_id, index, own, max_logical);
  if (!frame) return Error(frame.error());
  if (zstd_contexts.dctx == nullptr) zstd_contexts.dctx = ZSTD_createDCtx();
  if (zstd_contexts.dctx == nullptr) {
    return Error(StatusCode::kInternal, "object {} of backup {}: ZSTD_createDCtx failed", index,
                 backup_id);
  }
  std::vector<uint8_t> plaintext(frame->logical);
  size_t got = ZSTD_decompressDCtx(zstd_contexts.dctx, plaintext.data(), plaintext.size(),
                                   frame->bytes.data(), frame->bytes.size());
  auto corrupt = [&](std::string_view what) {
    return Error(StatusCode::kCorruption, "object {} of backup {}: {}", index, backup_id, what);
  };
  if (ZSTD_isError(got)) return corrupt(std::string("zstd: ") + ZSTD_getErrorName(got));
  if (got != frame->logical) {
    return corrupt(fmt::format("size mismatch: {} bytes decompressed, the header says {}", got,
                               frame->logical));
  }
  return plaintext;
}

}  // namespace replboot::archive
