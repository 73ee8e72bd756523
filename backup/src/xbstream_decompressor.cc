#include "xbstream_decompressor.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <unistd.h>

#include <utility>

namespace replboot::backup {

Decompressor::Decompressor(int out_fd, std::string name, Codec codec)
    : out_fd_(out_fd), name_(std::move(name)), codec_(codec) {
  worker_ = std::thread([this] { Run(); });
}

Decompressor::~Decompressor() {
  queue_.Close();  // the read callback then fails, and libarchive gives up
  if (worker_.joinable()) worker_.join();
}

Status Decompressor::TrailingData() const {
  return Status(StatusCode::kCorruption,
                fmt::format("decompressing {}: data continues after the end of the compressed "
                            "stream",
                            name_));
}

Status Decompressor::Push(std::span<const uint8_t> data) {
  if (queue_.Push(data)) return Status::Ok();
  // Closed by the worker, which has ended: an error, or the compressed stream ended.
  std::lock_guard lock(mu_);
  if (!worker_status_.ok()) return worker_status_;
  return TrailingData();
}

Status Decompressor::Finish(uint64_t* written) {
  queue_.EndInput();
  if (worker_.joinable()) worker_.join();
  std::lock_guard lock(mu_);
  if (!worker_status_.ok()) return worker_status_;
  if (unread_bytes_ != 0) return TrailingData();
  *written = output_bytes_;
  return Status::Ok();
}

long Decompressor::ReadCallback(::archive*, void* opaque, const void** buffer) {  // NOLINT
  auto* self = static_cast<Decompressor*>(opaque);
  if (self->current_unread_) {
    self->current_unread_ = false;  // Run() popped the first block
  } else if (!self->queue_.Pop(&self->current_)) {
    return self->queue_.closed() ? -1 : 0;  // stopped, or the end of the member
  }
  *buffer = self->current_.data();
  return static_cast<long>(self->current_.size());  // NOLINT
}

void Decompressor::Run() {
  // An empty member (no compressed bytes at all) is an empty file. Otherwise the
  // first block waits in current_ for libarchive's first read.
  if (!queue_.Pop(&current_)) {
    queue_.Close();
    return;
  }
  current_unread_ = true;
  Status status;
  struct archive* a = archive_read_new();
  auto fail = [&](std::string_view what) {
    return Status(StatusCode::kCorruption,
                  fmt::format("decompressing {}: {}: {}", name_, what,
                              archive_error_string(a) ? archive_error_string(a) : "unknown error"));
  };
  int want_filter = codec_ == Codec::kZstd ? ARCHIVE_FILTER_ZSTD : ARCHIVE_FILTER_LZ4;
  int r = codec_ == Codec::kZstd ? archive_read_support_filter_zstd(a)
                                 : archive_read_support_filter_lz4(a);
  // ARCHIVE_WARN would mean "through an external program": not acceptable here.
  if (r != ARCHIVE_OK) {
    status = fail("libarchive lacks built-in support for this codec");
  } else if (archive_read_support_format_raw(a) != ARCHIVE_OK) {
    status = fail("libarchive raw format");
  } else if (archive_read_open(a, this, nullptr, &Decompressor::ReadCallback, nullptr) !=
             ARCHIVE_OK) {
    status = fail("cannot start");
  } else {
    struct archive_entry* entry = nullptr;
    if (archive_read_next_header(a, &entry) != ARCHIVE_OK) {
      status = fail("not a compressed stream");
    } else if (archive_filter_count(a) < 2 || archive_filter_code(a, 0) != want_filter) {
      // Without this check, bytes that are not zstd/lz4 at all would pass through
      // the raw format unchanged and be written as if decompressed.
      status = Status(StatusCode::kCorruption,
                      fmt::format("decompressing {}: content is not {} data", name_,
                                  codec_ == Codec::kZstd ? "zstd" : "lz4"));
    } else {
      std::vector<uint8_t> out(1u << 20);
      uint64_t offset = 0;
      while (status.ok()) {
        la_ssize_t n = archive_read_data(a, out.data(), out.size());
        if (n == 0) break;
        if (n < 0) {
          status = fail("corrupt compressed data");
          break;
        }
        size_t done = 0;
        while (done < static_cast<size_t>(n)) {
          ssize_t w = pwrite(out_fd_, out.data() + done, static_cast<size_t>(n) - done,
                             static_cast<off_t>(offset + done));
          if (w < 0) {
            if (errno == EINTR) continue;
            status = ErrnoStatus(errno, fmt::format("write {} at offset {}", name_, offset + done));
            break;
          }
          done += static_cast<size_t>(w);
        }
        offset += done;
      }
      std::lock_guard lock(mu_);
      output_bytes_ = offset;
    }
  }
  archive_read_free(a);
  std::lock_guard lock(mu_);
  worker_status_ = std::move(status);
  // Closed only now, so that a Push() finding the queue closed finds the status set.
  unread_bytes_ = queue_.Close();
}

}  // namespace replboot::backup
