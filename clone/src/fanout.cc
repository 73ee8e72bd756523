#include "fanout.h"

#include <fmt/format.h>

#include <algorithm>

namespace replboot::clone::fanout {

using Clock = std::chrono::steady_clock;

namespace {

// The buffer's size as its reason text says it: "8 MiB", "256 KiB".
std::string Size(size_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  if (bytes >= (1u << 10) && bytes % (1u << 10) == 0) return fmt::format("{} KiB", bytes >> 10);
  return fmt::format("{} bytes", bytes);
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

bool Run::Receiver::Live() const {
  return status.state == "joining" || status.state == "streaming";
}

Run::Run(uint64_t id, Limits limits) : id_(id), limits_(limits) {}

std::optional<size_t> Run::Join(std::string name, std::string peer, CompressRequest compress) {
  std::lock_guard lock(mu_);
  if (phase_ != Phase::kJoining || receivers_.size() >= limits_.max_receivers) return std::nullopt;
  Receiver r;
  r.compress = compress;
  r.status.asked = CompressRequestText(compress);
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

void Run::Start(StreamHeader header) {
  std::lock_guard lock(mu_);
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
                                           [](const Receiver& r) { return r.Live(); }));
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
    for (auto& r : receivers_) {
      if (!r.Live()) continue;
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
      if (!r.Live()) continue;
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
    if (!r.Live()) continue;
    r.queue.push_back(chunk);
    r.queued_bytes += chunk->memory();
    r.status.queued_bytes = r.queued_bytes;
  }
  cv_.notify_all();
  return true;
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
    if (r.status.state == "dropped") return !r.error_sent;
    if (!r.Live()) return false;
    if (phase_ == Phase::kFailed) return !r.error_sent;
    if (phase_ != Phase::kStreaming && phase_ != Phase::kFinished) return false;
    return !r.header_sent || !r.queue.empty() || (phase_ == Phase::kFinished && !r.trailer_sent);
  };
  Item item;
  if (!cv_.wait_for(lock, wait, ready)) return item;
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
    item.payload = EncodeStreamHeader(header_);
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
  item.payload = EncodeStreamTrailer(trailer_);
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

void Run::Gone(size_t i, std::string reason) {
  std::lock_guard lock(mu_);
  Receiver& r = receivers_.at(i);
  if (r.status.state == "dropped") return;  // keeps the reason it was dropped for
  r.status.state = "gone";
  r.status.reason = std::move(reason);
  r.queue.clear();
  r.queued_bytes = 0;
  r.status.queued_bytes = 0;
  cv_.notify_all();
}

void Run::Done(size_t i) {
  std::lock_guard lock(mu_);
  receivers_.at(i).status.state = "done";
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
