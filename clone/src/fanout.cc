#include "fanout.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/falloc.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>

#include "replboot/base/log.h"

namespace replboot::clone::fanout {

using Clock = std::chrono::steady_clock;

namespace {

// The buffer's size as its reason text says it: "8 MiB", "256 KiB".
std::string Size(size_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  if (bytes >= (1u << 10) && bytes % (1u << 10) == 0) return fmt::format("{} KiB", bytes >> 10);
  return fmt::format("{} bytes", bytes);
}

// "mysql-2/10.0.0.2:40000" (or the address alone), as the logs name a receiver.
std::string ReceiverLabel(const BackupReceiverStatus& status) {
  return status.name.empty() ? status.peer : status.name + "/" + status.peer;
}

}  // namespace

ChunkPool::ChunkPool(size_t frame_bytes, size_t keep)
    : frame_bytes_(frame_bytes), state_(std::make_shared<State>()) {
  state_->keep = keep;
}

std::shared_ptr<Chunk> ChunkPool::Take() {
  std::unique_ptr<Chunk> chunk;
  {
    std::lock_guard lock(state_->mu);
    if (!state_->free.empty()) {
      chunk = std::move(state_->free.back());
      state_->free.pop_back();
    }
  }
  if (!chunk) {
    chunk = std::make_unique<Chunk>();
    chunk->frame.resize(frame_bytes_);
  }
  chunk->size = 0;
  chunk->stream_bytes = 0;
  chunk->type = FrameType::kData;
  return std::shared_ptr<Chunk>(chunk.release(), [state = state_](Chunk* released) {
    std::unique_ptr<Chunk> owned(released);
    std::lock_guard lock(state->mu);
    if (state->free.size() < state->keep) state->free.push_back(std::move(owned));
  });
}

size_t ChunkPool::idle() const {
  std::lock_guard lock(state_->mu);
  return state_->free.size();
}

Result<std::unique_ptr<Spool>> Spool::Create(const std::string& parent, uint64_t cap_bytes) {
  auto dir = files::OwnedTempDir::Create(parent, kSpoolDirPrefix);
  if (!dir) return Error(dir.error().WithContext("resume spool"));
  std::string path = dir->path() + "/stream";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Error(ErrnoStatus(errno, "create " + path));
  return std::unique_ptr<Spool>(new Spool(std::move(*dir), fd, std::move(path), cap_bytes));
}

Spool::~Spool() {
  if (fd_ >= 0) ::close(fd_);
  (void)dir_.Remove();
}

Status Spool::Append(const Chunk& chunk) {
  const std::span<const uint8_t> payload(chunk.frame.data() + kFrameHeaderSize, chunk.size);
  if (!Fits(payload.size())) {
    return Status(StatusCode::kUnavailable,
                  fmt::format("the resume spool is full ({} of {} bytes)", usage_, cap_));
  }
  if (!recs_.empty() && chunk.offset != end_) {
    return Status(StatusCode::kInternal,
                  fmt::format("spool record at {} does not follow {}", chunk.offset, end_));
  }
  size_t done = 0;
  while (done < payload.size()) {
    ssize_t n = ::pwrite(fd_, payload.data() + done, payload.size() - done,
                         static_cast<off_t>(file_end_ + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "write " + path_);
    done += static_cast<size_t>(n);
  }
  recs_[chunk.offset] = Record{file_end_, static_cast<uint32_t>(payload.size()),
                               static_cast<uint32_t>(chunk.stream_bytes), chunk.type};
  file_end_ += payload.size();
  usage_ += payload.size();
  end_ = chunk.offset + chunk.stream_bytes;
  return Status::Ok();
}

std::optional<Spool::Record> Spool::Find(uint64_t offset) const {
  auto it = recs_.find(offset);
  if (it == recs_.end()) return std::nullopt;
  return it->second;
}

Status Spool::Read(uint64_t offset, const Record& record, Chunk* chunk) const {
  std::vector<uint8_t>* frame = &chunk->frame;
  frame->resize(kFrameHeaderSize + record.size + kTagSize);
  size_t done = 0;
  while (done < record.size) {
    ssize_t n = ::pread(fd_, frame->data() + kFrameHeaderSize + done, record.size - done,
                        static_cast<off_t>(record.pos + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? ErrnoStatus(errno, "read " + path_) : Status(StatusCode::kIOError, "spool cut short");
    done += static_cast<size_t>(n);
  }
  chunk->size = record.size;
  chunk->stream_bytes = record.stream_bytes;
  chunk->type = record.type;
  chunk->offset = offset;
  return Status::Ok();
}

void Spool::Release(uint64_t offset) {
  while (!recs_.empty() && recs_.begin()->first + recs_.begin()->second.stream_bytes <= offset) {
    const Record r = recs_.begin()->second;
    // A hole where the record was: the disk use goes down with the reader's progress.
    if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(r.pos),
                    static_cast<off_t>(r.size)) == 0) {
      usage_ -= r.size;
    }
    recs_.erase(recs_.begin());
  }
}

bool Run::Receiver::Live() const {
  return status.state == "joining" || status.state == "streaming";
}

bool Run::Receiver::Kept() const { return Live() || status.state == "detached"; }

Run::Run(uint64_t id, Limits limits) : id_(id), limits_(limits) {}

std::optional<size_t> Run::Join(std::string name, std::string peer, CompressRequest compress) {
  std::lock_guard lock(mu_);
  if (phase_ != Phase::kJoining || receivers_.size() >= limits_.max_receivers) return std::nullopt;
  Receiver r;
  r.compress = compress;
  r.status.asked = CompressRequestText(compress);
  if (limits_.resume_window.count() > 0) {
    auto nonce = RandomNonce();
    if (nonce) std::copy_n(nonce->begin(), kResumeIdSize, r.resume_id.begin());
  }
  r.status.run = id_;
  r.status.name = std::move(name);
  r.status.peer = std::move(peer);
  r.status.state = "joining";
  receivers_.push_back(std::move(r));
  cv_.notify_all();
  return receivers_.size() - 1;
}

size_t Run::CloseJoiningAt(Clock::time_point deadline, std::stop_token stop) {
  std::unique_lock lock(mu_);
  while (phase_ == Phase::kJoining && receivers_.size() < limits_.max_receivers &&
         !stop.stop_requested() && Clock::now() < deadline) {
    // Short slices: a stop request is seen without a callback on this condition variable.
    cv_.wait_until(lock, std::min(deadline, Clock::now() + std::chrono::milliseconds(100)));
  }
  if (phase_ == Phase::kJoining) phase_ = Phase::kWaitingStart;
  return receivers_.size();
}

size_t Run::receivers() const {
  std::lock_guard lock(mu_);
  return receivers_.size();
}

bool Run::joining() const {
  std::lock_guard lock(mu_);
  return phase_ == Phase::kJoining;
}

uint64_t CheckpointBytesFor(uint64_t estimated_bytes) {
  return std::clamp<uint64_t>(estimated_bytes / 64, 2u << 20, 16u << 20);
}

void Run::Start(StreamHeader header) {
  std::lock_guard lock(mu_);
  if (limits_.resume_window.count() > 0) {
    limits_.checkpoint_bytes = CheckpointBytesFor(header.estimated_bytes);
    limits_.backlog_bytes = static_cast<size_t>(limits_.checkpoint_bytes) + kBacklogSlack;
    // A spool smaller than two backlogs could never let a resumed reader catch up.
    limits_.spool_bytes = std::max<uint64_t>(limits_.spool_bytes, 2 * limits_.backlog_bytes + (4u << 20));
  }
  phase_ = Phase::kStreaming;
  started_with_ = 0;
  for (auto& r : receivers_) {
    if (!r.Live()) continue;
    r.status.state = "streaming";
    ++started_with_;
  }
  header_ = std::move(header);
  header_.run_id = id_;
  header_.run_receivers = started_with_;
  cv_.notify_all();
}

void Run::Fail(std::string message) {
  std::lock_guard lock(mu_);
  phase_ = Phase::kFailed;
  failure_ = std::move(message);
  cv_.notify_all();
}

bool Run::sole_receiver() const {
  std::lock_guard lock(mu_);
  return started_with_ == 1;
}

size_t Run::live() const {
  std::lock_guard lock(mu_);
  return static_cast<size_t>(std::count_if(receivers_.begin(), receivers_.end(),
                                           [](const Receiver& r) { return r.Kept(); }));
}

Clock::duration Run::Receiver::HeldWithin(Clock::time_point now, std::chrono::milliseconds window) {
  const auto since = now - window;
  while (!held.empty() && held.front().second <= since) held.pop_front();
  Clock::duration total{0};
  for (const auto& [from, to] : held) total += to - std::max(from, since);
  if (holding_since) total += now - std::max(*holding_since, since);
  return total;
}

void Run::Receiver::StopHolding(Clock::time_point now) {
  if (!holding_since) return;
  held.emplace_back(*holding_since, now);
  holding_since.reset();
}

void Run::DropLocked(Receiver& r, std::string reason) {
  r.status.state = "dropped";
  r.status.reason = std::move(reason);
  r.queue.clear();  // the memory goes now, not when its sender notices
  r.queued_bytes = 0;
  r.status.queued_bytes = 0;
  r.holding_since.reset();
  r.held.clear();
  cv_.notify_all();
}

bool Run::Publish(std::shared_ptr<Chunk> chunk, const std::stop_token& stop,
                  std::vector<BackupReceiverStatus>* dropped) {
  std::unique_lock lock(mu_);
  for (;;) {
    if (stop.stop_requested()) return false;
    bool any_live = false;
    bool blocked = false;
    const Receiver* starved = nullptr;  // one that waits for data
    if (spool_ && !spool_->Fits(chunk->size)) {
      // A spooled reader frees room as it goes: wait for it, as for a full queue; with none,
      // the detached receivers cannot be kept.
      const uint64_t end = spool_->end();
      bool reading = std::any_of(receivers_.begin(), receivers_.end(), [end](const Receiver& r) {
        return r.Live() && r.spooled && r.cursor < end;
      });
      if (reading) {
        cv_.wait_for(lock, std::chrono::milliseconds(50));
        continue;
      }
      for (auto& r : receivers_) {
        if (r.status.state == "detached" || (r.Live() && r.spooled))
          GiveUpLocked(r, fmt::format("the resume spool filled up ({} MiB, backup.resume_spool_mb) "
                                      "before it came back",
                                      limits_.spool_bytes >> 20));
      }
      CloseSpoolIfUnusedLocked();
    }
    for (auto& r : receivers_) {
      if (r.Kept() && r.spooled) any_live = true;
      if (r.status.state == "detached") any_live = true;
      if (!r.Live() || r.spooled) continue;
      any_live = true;
      if (r.queued_bytes > 0 && r.queued_bytes + chunk->memory() > limits_.buffer_bytes) {
        blocked = true;
      } else if (r.queued_bytes == 0) {
        starved = &r;
      }
    }
    if (!any_live) return false;
    const auto now = Clock::now();
    if (!blocked) {
      for (auto& r : receivers_) r.StopHolding(now);
      break;
    }
    const auto window = std::max(limits_.slow_window, limits_.grace);
    for (auto& r : receivers_) {
      if (!r.Live() || r.spooled) continue;
      const bool full =
          r.queued_bytes > 0 && r.queued_bytes + chunk->memory() > limits_.buffer_bytes;
      if (!full || starved == nullptr) {
        r.StopHolding(now);
        continue;
      }
      if (!r.holding_since) r.holding_since = now;
      if (r.HeldWithin(now, window) >= limits_.grace) {
        DropLocked(
            r,
            fmt::format("its {} buffer was full while {} waited for data for {} ms of the last "
                        "{} ms (the receiver takes bytes at under {:.0f}% of the others' pace in "
                        "run {})",
                        Size(limits_.buffer_bytes),
                        starved->status.name.empty() ? starved->status.peer : starved->status.name,
                        limits_.grace.count(), window.count(),
                        100.0 * (1.0 - static_cast<double>(limits_.grace.count()) /
                                           static_cast<double>(window.count())),
                        id_));
        if (dropped) dropped->push_back(r.status);
      }
    }
    cv_.wait_for(lock, std::chrono::milliseconds(50));
  }
  for (auto& r : receivers_) {
    if (!r.Live() || r.spooled) continue;
    r.queue.push_back(chunk);
    r.queued_bytes += chunk->memory();
    r.status.queued_bytes = r.queued_bytes;
  }
  published_end_ = chunk->offset + chunk->stream_bytes;
  if (spool_) {
    if (replboot::Status s = spool_->Append(*chunk);
        !s.ok()) {
      for (auto& r : receivers_) {
        if (r.status.state == "detached" || (r.Live() && r.spooled))
          GiveUpLocked(r, fmt::format("the resume spool failed: {}", s.message()));
      }
      CloseSpoolIfUnusedLocked();
    }
    resume_stats_.spool_bytes = spool_ ? spool_->usage() : 0;
  }
  if (limits_.resume_window.count() > 0 && limits_.backlog_bytes > 0) {
    backlog_.push_back(chunk);
    // Counted in stream bytes, as the receivers' durable points and the resume requests are
    // (a compressed chunk still holds a whole frame of memory: the count of chunks is the
    // bound either way).
    backlog_held_ += chunk->stream_bytes;
    while (!backlog_.empty() &&
           backlog_held_ - backlog_.front()->stream_bytes >= limits_.backlog_bytes) {
      backlog_held_ -= backlog_.front()->stream_bytes;
      backlog_.pop_front();
    }
  }
  cv_.notify_all();
  return true;
}

void Run::GiveUpLocked(Receiver& r, std::string reason) {
  log::Get("clone")->warn("event=backup_resume_abandoned peer={} run={} reason={}",
                          ReceiverLabel(r.status),
                          id_, log::Quote(reason));
  r.status.state = "gone";
  r.status.reason = std::move(reason);
  r.detached_until.reset();
  r.queue.clear();
  r.queued_bytes = 0;
  r.status.queued_bytes = 0;
  cv_.notify_all();
}

void Run::CloseSpoolIfUnusedLocked() {
  if (!spool_) return;
  const bool needed = std::any_of(receivers_.begin(), receivers_.end(), [](const Receiver& r) {
    return r.status.state == "detached" || (r.Live() && r.spooled);
  });
  if (needed) return;
  spool_.reset();  // the file and its dir go
  resume_stats_.spool_bytes = 0;
  if (limits_.spools) limits_.spools->fetch_sub(1);
}

// Punches what no detached or spooled receiver can ask for again: below the oldest frame each
// one still has on record.
void Run::ReleaseSpoolLocked() {
  if (!spool_) return;
  uint64_t keep = spool_->end();
  for (const auto& r : receivers_) {
    if (r.status.state != "detached" && !(r.Live() && r.spooled)) continue;
    keep = std::min(keep, r.sent.empty() ? r.cursor : r.sent.front().offset);
  }
  spool_->Release(keep);
  resume_stats_.spool_bytes = spool_->usage();
}

void Run::Tick() {
  std::lock_guard lock(mu_);
  const auto now = Clock::now();
  for (auto& r : receivers_) {
    if (r.status.state == "detached" && r.detached_until && now >= *r.detached_until) {
      GiveUpLocked(r, fmt::format("it did not come back within backup.resume_window ({} s)",
                                  limits_.resume_window.count() / 1000));
    }
  }
  CloseSpoolIfUnusedLocked();
}

std::optional<Run::Resumed> Run::Resume(const ResumeRequest& request, const CompressRequest& asked,
                                        const std::string& name, const std::string& peer,
                                        std::string* why) {
  std::lock_guard lock(mu_);
  why->clear();
  for (size_t i = 0; i < receivers_.size(); ++i) {
    Receiver& r = receivers_[i];
    if (CRYPTO_memcmp(r.resume_id.data(), request.resume_id.data(), kResumeIdSize) != 0) continue;
    if (limits_.resume_window.count() == 0) break;
    if (request.run_id != id_) {
      *why = fmt::format("the stream is of run {}, not {}", id_, request.run_id);
      return std::nullopt;
    }
    if (r.status.state != "detached") {
      *why = fmt::format("its receiver is {} ({})", r.status.state, r.status.reason);
      return std::nullopt;
    }
    const Receiver::SentFrame* frame = nullptr;
    for (const auto& f : r.sent) {
      if (f.offset == request.frame_offset) frame = &f;
    }
    if (frame == nullptr || CRYPTO_memcmp(frame->before.data(), request.chain.data(),
                                          request.chain.size()) != 0) {
      *why = fmt::format("byte {} is not a frame this donor sent it with that resume chain "
                         "(kept: {} frames from byte {})",
                         request.frame_offset, r.sent.size(),
                         r.sent.empty() ? 0 : r.sent.front().offset);
      return std::nullopt;
    }
    if (!spool_ || !spool_->Find(request.frame_offset)) {
      *why = fmt::format("the spool no longer holds byte {}", request.frame_offset);
      return std::nullopt;
    }
    // The spool holds the run's frames as granted: the HELLO must still ask for that.
    if (replboot::Status grant = CheckGrant(header_, asked); !grant.ok()) {
      *why = fmt::format("the run's frames are {}:{} and this HELLO asks {} ({})",
                         header_.compression, header_.compression_level,
                         CompressRequestText(asked), grant.message());
      return std::nullopt;
    }
    const ResumeChain before = frame->before;
    // Frames after this one are sent again under the new session's tags, and recorded then.
    while (!r.sent.empty() && r.sent.back().offset > request.frame_offset) r.sent.pop_back();
    if (!r.sent.empty()) r.sent.pop_back();
    resume_stats_.resent_bytes += r.sent_end > request.frame_offset ? r.sent_end - request.frame_offset : 0;
    ++resume_stats_.resumed;
    r.status.state = "streaming";
    r.status.reason.clear();
    r.status.name = name;
    r.status.peer = peer;
    r.detached_until.reset();
    r.spooled = true;
    r.cursor = request.frame_offset;
    r.resumed_from = request.frame_offset;
    r.session_wire = 0;
    r.header_sent = false;
    r.trailer_sent = false;
    r.error_sent = false;
    cv_.notify_all();
    return Resumed{i, before};
  }
  return std::nullopt;
}

Run::ResumeStats Run::resume_stats() const {
  std::lock_guard lock(mu_);
  return resume_stats_;
}

ResumeId Run::resume_id(size_t i) const {
  std::lock_guard lock(mu_);
  return receivers_.at(i).resume_id;
}

void Run::Finish(const StreamTrailer& trailer) {
  std::lock_guard lock(mu_);
  trailer_ = trailer;
  phase_ = Phase::kFinished;
  cv_.notify_all();
}

Run::Item Run::Next(size_t i, std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  Receiver& r = receivers_.at(i);
  auto ready = [&] {
    if (r.status.state == "dropped" || (r.spooled && r.status.state == "gone")) return !r.error_sent;
    if (!r.Live()) return false;
    if (phase_ == Phase::kFailed) return !r.error_sent;
    if (phase_ != Phase::kStreaming && phase_ != Phase::kFinished) return false;
    if (r.spooled) {
      return !r.header_sent || (spool_ && r.cursor < spool_->end()) ||
             (phase_ == Phase::kFinished && !r.trailer_sent && r.cursor >= published_end_);
    }
    return !r.header_sent || !r.queue.empty() || (phase_ == Phase::kFinished && !r.trailer_sent);
  };
  Item item;
  if (!cv_.wait_for(lock, wait, ready)) return item;
  if (r.spooled && r.status.state == "gone") {
    r.error_sent = true;
    item.kind = Item::Kind::kError;
    item.error = ErrorMessage{"backup_failed", r.status.reason};
    return item;
  }
  if (r.status.state == "dropped" || phase_ == Phase::kFailed) {
    r.error_sent = true;
    if (r.status.state != "dropped") {
      r.status.state = "gone";
      r.status.reason = failure_;
      r.queue.clear();
      r.queued_bytes = 0;
      r.status.queued_bytes = 0;
    }
    item.kind = Item::Kind::kError;
    item.error = r.status.state == "dropped"
                     ? ErrorMessage{"dropped", fmt::format("dropped from shared backup run {}: {}; "
                                                           "retry",
                                                           id_, r.status.reason)}
                     : ErrorMessage{"backup_failed", failure_};
    return item;
  }
  if (!r.header_sent) {
    r.header_sent = true;
    item.kind = Item::Kind::kHeader;
    StreamHeader header = header_;
    if (limits_.resume_window.count() > 0) {
      header.resume_id = HexEncode(r.resume_id);
      header.checkpoint_bytes = limits_.checkpoint_bytes;
      header.resumed_from = r.spooled ? r.resumed_from : 0;
    }
    item.payload = EncodeStreamHeader(header);
    return item;
  }
  if (r.spooled && spool_ && r.cursor < spool_->end()) {
    auto record = spool_->Find(r.cursor);
    if (!record) {
      GiveUpLocked(r, fmt::format("the spool lost byte {}", r.cursor));
      item.kind = Item::Kind::kError;
      item.error = ErrorMessage{"backup_failed", r.status.reason};
      r.error_sent = true;
      return item;
    }
    const uint64_t offset = r.cursor;
    r.cursor += record->stream_bytes;
    // A reference of its own: a spool given up meanwhile (it filled, a window closed) goes
    // only once this read is done.
    const std::shared_ptr<const Spool> spool = spool_;
    lock.unlock();
    auto chunk = std::make_shared<Chunk>();
    if (replboot::Status s = spool->Read(offset, *record, chunk.get()); !s.ok()) {
      item.kind = Item::Kind::kError;
      item.error = ErrorMessage{"backup_failed", s.message()};
      return item;
    }
    item.kind = Item::Kind::kData;
    item.chunk = std::move(chunk);
    item.own_chunk = true;
    return item;
  }
  if (!r.queue.empty()) {
    item.kind = Item::Kind::kData;
    item.chunk = std::move(r.queue.front());
    r.queue.pop_front();
    r.queued_bytes -= item.chunk->memory();
    r.status.queued_bytes = r.queued_bytes;
    cv_.notify_all();  // the producer may wait for room
    return item;
  }
  r.trailer_sent = true;
  item.kind = Item::Kind::kTrailer;
  StreamTrailer trailer = trailer_;
  // wire_bytes is what this session's DATA/ZDATA frames held (protocol.h): a resumed session
  // carries only the run's frames from resumed_from on.
  if (trailer.wire_bytes != 0 && r.spooled) trailer.wire_bytes = r.session_wire;
  item.payload = EncodeStreamTrailer(trailer);
  item.trailer_ok = trailer_.ok();
  return item;
}

void Run::Sent(size_t i, size_t bytes, size_t wire_bytes) {
  std::lock_guard lock(mu_);
  receivers_.at(i).status.bytes_sent += bytes;
  receivers_.at(i).status.wire_bytes_sent += wire_bytes;
}

void Run::ReportLink(size_t i, uint64_t rwnd_limited_us) {
  std::lock_guard lock(mu_);
  receivers_.at(i).rwnd_limited_us = rwnd_limited_us;
}

uint64_t Run::MaxRwndLimited() const {
  std::lock_guard lock(mu_);
  uint64_t most = 0;
  for (const auto& r : receivers_) {
    if (r.Live()) most = std::max(most, r.rwnd_limited_us);
  }
  return most;
}

std::vector<CompressRequest> Run::CompressRequests() const {
  std::lock_guard lock(mu_);
  std::vector<CompressRequest> out;
  for (const auto& r : receivers_) out.push_back(r.compress);
  return out;
}

void Run::SetCompression(const std::string& grant) {
  std::lock_guard lock(mu_);
  for (auto& r : receivers_) r.status.compression = grant;
}

void Run::Sent(size_t i, uint64_t offset, size_t bytes, size_t wire_bytes,
               const ResumeChain& before) {
  std::lock_guard lock(mu_);
  Receiver& r = receivers_.at(i);
  r.status.bytes_sent += bytes;
  r.status.wire_bytes_sent += wire_bytes;
  r.session_wire += wire_bytes;
  r.sent_end = std::max(r.sent_end, offset + bytes);
  if (limits_.resume_window.count() == 0) return;
  r.sent.push_back({offset, bytes, before});
  while (r.sent.size() > 1 && offset - r.sent.front().offset > limits_.backlog_bytes) r.sent.pop_front();
  if (r.spooled) ReleaseSpoolLocked();
}

bool Run::Gone(size_t i, std::string reason, bool resumable_failure) {
  std::lock_guard lock(mu_);
  Receiver& r = receivers_.at(i);
  if (r.status.state == "dropped") return false;  // keeps the reason it was dropped for
  const bool resumable = resumable_failure && limits_.resume_window.count() > 0 && r.Live() &&
                         r.header_sent &&
                         !r.trailer_sent && !r.sent.empty() &&
                         (phase_ == Phase::kStreaming || phase_ == Phase::kFinished);
  if (resumable) {
    std::string why;
    if (!spool_) {
      if (limits_.spools && limits_.spools->fetch_add(1) >= limits_.max_spools) {
        limits_.spools->fetch_sub(1);
        why = fmt::format("{} runs hold a resume spool already", limits_.max_spools);
      } else {
        auto spool = Spool::Create(limits_.spool_parent, limits_.spool_bytes);
        if (!spool) {
          if (limits_.spools) limits_.spools->fetch_sub(1);
          why = spool.error().message();
        } else {
          spool_ = std::move(*spool);
          // The backlog first: the receiver's durable point is behind what it was sent.
          for (const auto& c : backlog_) {
            if (replboot::Status s = spool_->Append(*c);
                !s.ok()) {
              why = s.message();
              break;
            }
          }
          if (!why.empty()) {
            spool_.reset();
            if (limits_.spools) limits_.spools->fetch_sub(1);
          }
        }
      }
    }
    if (why.empty()) {
      while (!r.sent.empty() && !spool_->Find(r.sent.front().offset)) r.sent.pop_front();
      if (r.sent.empty()) why = "its frames are no longer in the spool";
    }
    if (why.empty()) {
      r.status.state = "detached";
      r.status.reason = std::move(reason);
      r.detached_until = Clock::now() + limits_.resume_window;
      r.spooled = false;
      r.queue.clear();
      r.queued_bytes = 0;
      r.status.queued_bytes = 0;
      ++resume_stats_.detached;
      resume_stats_.spool_bytes = spool_->usage();
      ReleaseSpoolLocked();
      cv_.notify_all();
      return true;
    }
    log::Get("clone")->warn("event=backup_resume_unavailable peer={} run={} reason={}",
                            ReceiverLabel(r.status),
                            id_, log::Quote(why));
  }
  r.status.state = "gone";
  r.status.reason = std::move(reason);
  r.queue.clear();
  r.queued_bytes = 0;
  r.status.queued_bytes = 0;
  CloseSpoolIfUnusedLocked();
  cv_.notify_all();
  return false;
}

void Run::Done(size_t i) {
  std::lock_guard lock(mu_);
  receivers_.at(i).status.state = "done";
  CloseSpoolIfUnusedLocked();
  cv_.notify_all();
}

std::vector<BackupReceiverStatus> Run::Status() const {
  std::lock_guard lock(mu_);
  std::vector<BackupReceiverStatus> out;
  out.reserve(receivers_.size());
  for (const auto& r : receivers_) out.push_back(r.status);
  return out;
}

}  // namespace replboot::clone::fanout
