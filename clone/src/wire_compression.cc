#include "wire_compression.h"

// <linux/tcp.h> for the TCP_INFO fields glibc's <netinet/tcp.h> lacks (tcpi_busy_time,
// tcpi_rwnd_limited); the two headers cannot be included together, so this file uses only it.
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <cstddef>
#include <utility>

namespace replboot::clone {

namespace {

ZSTD_CCtx* C(void* p) { return static_cast<ZSTD_CCtx*>(p); }
ZSTD_DCtx* D(void* p) { return static_cast<ZSTD_DCtx*>(p); }

}  // namespace

Result<ChunkCompressor> ChunkCompressor::Create() {
  ZSTD_CCtx* ctx = ZSTD_createCCtx();
  if (ctx == nullptr) return Error(StatusCode::kInternal, "ZSTD_createCCtx failed");
  ChunkCompressor c(ctx);
  // The tag protects the bytes; zstd's own checksum would only cost time.
  if (ZSTD_isError(ZSTD_CCtx_setParameter(ctx, ZSTD_c_checksumFlag, 0)) ||
      ZSTD_isError(ZSTD_CCtx_setParameter(ctx, ZSTD_c_contentSizeFlag, 1))) {
    return Error(StatusCode::kInternal, "zstd: cannot set the compressor's parameters");
  }
  return c;
}

ChunkCompressor::ChunkCompressor(ChunkCompressor&& o) noexcept
    : ctx_(std::exchange(o.ctx_, nullptr)) {}
ChunkCompressor& ChunkCompressor::operator=(ChunkCompressor&& o) noexcept {
  if (this != &o) {
    ZSTD_freeCCtx(C(ctx_));
    ctx_ = std::exchange(o.ctx_, nullptr);
  }
  return *this;
}
ChunkCompressor::~ChunkCompressor() { ZSTD_freeCCtx(C(ctx_)); }

Result<size_t> ChunkCompressor::Compress(int level, std::span<const uint8_t> in,
                                         std::span<uint8_t> out) {
  if (in.size() > kMaxFrameContent) {
    return Error(StatusCode::kInternal, "a chunk of {} bytes is over the {} a frame may hold",
                 in.size(), kMaxFrameContent);
  }
  if (ZSTD_isError(ZSTD_CCtx_setParameter(C(ctx_), ZSTD_c_compressionLevel, level))) {
    return Error(StatusCode::kInternal, "zstd: level {} refused", level);
  }
  // The window follows the content size (at most 1 MiB: 2^20), as kMaxWindowLog promises.
  const size_t n = ZSTD_compress2(C(ctx_), out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(n)) {
    if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall) return size_t{0};
    return Error(StatusCode::kInternal, "zstd compression failed: {}", ZSTD_getErrorName(n));
  }
  return n < in.size() ? n : size_t{0};
}

Result<FrameDecompressor> FrameDecompressor::Create() {
  ZSTD_DCtx* ctx = ZSTD_createDCtx();
  if (ctx == nullptr) return Error(StatusCode::kInternal, "ZSTD_createDCtx failed");
  FrameDecompressor d(ctx);
  // A frame header may ask for a window of up to 2^31 bytes: never more than a donor needs.
  if (ZSTD_isError(ZSTD_DCtx_setParameter(ctx, ZSTD_d_windowLogMax, kMaxWindowLog))) {
    return Error(StatusCode::kInternal, "zstd: cannot bound the decompressor's window");
  }
  return d;
}

FrameDecompressor::FrameDecompressor(FrameDecompressor&& o) noexcept
    : ctx_(std::exchange(o.ctx_, nullptr)) {}
FrameDecompressor& FrameDecompressor::operator=(FrameDecompressor&& o) noexcept {
  if (this != &o) {
    ZSTD_freeDCtx(D(ctx_));
    ctx_ = std::exchange(o.ctx_, nullptr);
  }
  return *this;
}
FrameDecompressor::~FrameDecompressor() { ZSTD_freeDCtx(D(ctx_)); }

Status FrameDecompressor::Decompress(std::span<const uint8_t> payload, uint64_t index,
                                     std::vector<uint8_t>* out) {
  auto fail = [&](std::string why) {
    // A failed frame leaves the context mid-frame: a fresh session for whoever goes on.
    ZSTD_DCtx_reset(D(ctx_), ZSTD_reset_session_only);
    out->clear();
    return Status(StatusCode::kCorruption, fmt::format("ZDATA frame #{} ({} bytes) {}", index,
                                                       payload.size(), why));
  };
  if (payload.empty()) return fail("is empty: it holds no zstd frame");
  // A frame that says up front it holds more than one frame may is refused before anything
  // is decompressed; one that does not say is held to the bound as it goes.
  const unsigned long long declared = ZSTD_getFrameContentSize(payload.data(), payload.size());
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != ZSTD_CONTENTSIZE_ERROR &&
      declared > kMaxFrameContent) {
    return fail(fmt::format("decompresses past {} bytes (it declares {}), the most one frame "
                            "may hold: refused",
                            kMaxFrameContent, declared));
  }
  if (out->capacity() < kMaxFrameContent) out->reserve(kMaxFrameContent);
  out->resize(kMaxFrameContent);
  ZSTD_inBuffer in{payload.data(), payload.size(), 0};
  ZSTD_outBuffer o{out->data(), out->size(), 0};
  for (;;) {
    const size_t before_in = in.pos;
    const size_t before_out = o.pos;
    const size_t ret = ZSTD_decompressStream(D(ctx_), &o, &in);
    if (ZSTD_isError(ret)) return fail(fmt::format("is not a valid zstd frame: {}", ZSTD_getErrorName(ret)));
    if (ret == 0 && in.pos == in.size) break;  // every frame in it complete
    if (o.pos == o.size) {
      // Full: one more byte of output means the frame holds more than it may.
      uint8_t extra = 0;
      ZSTD_outBuffer x{&extra, 1, 0};
      const size_t more = ZSTD_decompressStream(D(ctx_), &x, &in);
      if (ZSTD_isError(more))
        return fail(fmt::format("is not a valid zstd frame: {}", ZSTD_getErrorName(more)));
      if (x.pos > 0) {
        return fail(fmt::format("decompresses past {} bytes, the most one frame may hold: refused",
                                kMaxFrameContent));
      }
      if (more == 0 && in.pos == in.size) break;
      if (in.pos == in.size) return fail("ends inside a zstd frame (truncated)");
      continue;
    }
    if (in.pos == in.size) return fail("ends inside a zstd frame (truncated)");
    if (in.pos == before_in && o.pos == before_out) return fail("makes no progress in zstd");
  }
  out->resize(o.pos);
  return Status::Ok();
}

AutoDecision AutoLevel::Next(const WindowMeasure& m) {
  const double elapsed = std::chrono::duration<double>(m.elapsed).count();
  if (hold_ > 0 && --hold_ == 0) barred_level_ = -1;
  if (elapsed <= 0) return {level_, ""};
  const double blocked = std::chrono::duration<double>(m.blocked).count() / elapsed;
  const double compressing = std::chrono::duration<double>(m.compressing).count() / elapsed;
  const double receiver = std::chrono::duration<double>(m.receiver_limited).count() / elapsed;
  auto set = [&](int next, std::string reason) -> AutoDecision {
    if (next == level_) return {level_, ""};
    level_ = next;
    return {level_, std::move(reason)};
  };
  const int down = level_ >= 3 ? 1 : 0;
  if (receiver >= 0.5) return level_ > 0 ? set(down, "receiver-bound") : AutoDecision{level_, ""};
  if (blocked >= kUpBlocked && receiver < 0.5 * blocked) {
    const int up = std::min(level_ == 0 ? 1 : 3, std::max(max_level_, 1));
    if (up == barred_level_) return {level_, ""};
    return set(up, "link-bound");
  }
  if (blocked < kDownBlocked && compressing >= kDownCompressing && level_ > 0) {
    barred_level_ = level_;
    hold_ = kAutoHoldWindows;
    return set(down, "compressor-bound");
  }
  return {level_, ""};
}

Grant DecideGrant(const std::vector<CompressRequest>& asked, int64_t cpus, int64_t parallel) {
  Grant grant;
  if (asked.empty()) {
    grant.reason = "no receiver";
    return grant;
  }
  bool all_auto = true;
  int level = kMaxGrantedLevel;
  for (const auto& a : asked) {
    if (a.mode == CompressMode::kOff) {
      grant.reason = asked.size() == 1 ? "not asked"
                                       : "a receiver of the shared run asked for none (the run "
                                         "compresses once for all or for none)";
      return grant;
    }
    if (a.mode == CompressMode::kZstd) {
      all_auto = false;
      level = std::min(level, a.level);
    }
  }
  if (cpus > 0 && parallel >= cpus) {
    grant.reason = fmt::format("the backup tool's --parallel={} takes all {} CPUs of this donor",
                               parallel, cpus);
    return grant;
  }
  grant.mode = all_auto ? "auto" : "zstd";
  grant.level = std::max(level, 1);
  return grant;
}

std::optional<TcpLimits> ReadTcpLimits(int fd) {
  tcp_info info{};
  socklen_t length = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return std::nullopt;
  if (length < offsetof(tcp_info, tcpi_rwnd_limited) + sizeof info.tcpi_rwnd_limited)
    return std::nullopt;
  return TcpLimits{info.tcpi_busy_time, info.tcpi_rwnd_limited};
}

}  // namespace replboot::clone
