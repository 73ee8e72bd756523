#include "replboot/base/bounded_queue.h"

#include <utility>

namespace replboot {

bool BoundedByteQueue::Push(std::span<const uint8_t> bytes) {
  if (bytes.empty()) return true;
  std::unique_lock lock(mu_);
  space_.wait(lock, [&] { return closed_ || held_ == 0 || held_ + bytes.size() <= max_bytes_; });
  if (closed_) return false;
  // Copied under the lock: the consumer only takes it to pop, and a copy made
  // before waiting would hold one more block than the cap allows.
  blocks_.emplace_back(bytes.begin(), bytes.end());
  held_ += bytes.size();
  ready_.notify_one();
  return true;
}

bool BoundedByteQueue::PushOwned(std::vector<uint8_t>* block) {
  if (block->empty()) return true;
  const size_t cost = block->capacity();
  std::unique_lock lock(mu_);
  recycling_ = true;
  space_.wait(lock, [&] { return closed_ || held_ == 0 || held_ + cost <= max_bytes_; });
  if (closed_) return false;
  blocks_.push_back(std::exchange(*block, {}));
  held_ += cost;
  if (!spares_.empty()) {  // *block is empty since the exchange
    *block = std::move(spares_.back());
    spares_.pop_back();
  }
  ready_.notify_one();
  return true;
}

void BoundedByteQueue::EndInput() {
  std::lock_guard lock(mu_);
  input_ended_ = true;
  ready_.notify_one();
}

bool BoundedByteQueue::Pop(std::vector<uint8_t>* block) {
  std::unique_lock lock(mu_);
  if (in_hand_ != 0) {
    held_ -= in_hand_;
    in_hand_ = 0;
    // Kept for the producer (PushOwned) rather than freed: its pages stay mapped and are
    // filled again as they are.
    if (recycling_) spares_.push_back(std::exchange(*block, {}));
    space_.notify_one();
  }
  ready_.wait(lock, [&] { return closed_ || input_ended_ || !blocks_.empty(); });
  if (closed_ || blocks_.empty()) {
    block->clear();
    return false;
  }
  *block = std::move(blocks_.front());
  blocks_.pop_front();
  in_hand_ = block->capacity();
  return true;
}

size_t BoundedByteQueue::Close() {
  std::lock_guard lock(mu_);
  size_t unread = held_ - in_hand_;
  blocks_.clear();
  spares_.clear();
  held_ = 0;
  in_hand_ = 0;
  closed_ = true;
  ready_.notify_all();
  space_.notify_all();
  return unread;
}

bool BoundedByteQueue::ended() const {
  std::lock_guard lock(mu_);
  return input_ended_ && blocks_.empty() && !closed_;
}

bool BoundedByteQueue::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

size_t BoundedByteQueue::held_bytes() const {
  std::lock_guard lock(mu_);
  return held_;
}

}  // namespace replboot
