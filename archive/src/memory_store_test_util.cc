#include "memory_store_test_util.h"

#include <fmt/format.h>

#include <cstring>
#include <random>
#include <thread>

namespace replboot::archive::testing {

Status MemoryStore::Put(const std::string& key, std::span<const uint8_t> body) {
  if (put_delay.count() > 0) std::this_thread::sleep_for(put_delay);
  std::vector<uint8_t> bytes(body.begin(), body.end());
  std::lock_guard lock(mu_);
  if (fail_puts_after && puts_ >= *fail_puts_after) {
    return Status(
        StatusCode::kUnavailable,
        fmt::format("memory://test: put {}: 503 Service Unavailable after 5 attempts", key));
  }
  puts_++;
  if (on_put) on_put(key, &bytes);
  objects_[key] = std::move(bytes);
  return Status::Ok();
}

Result<bool> MemoryStore::PutIfAbsent(const std::string& key, std::span<const uint8_t> body) {
  {
    std::lock_guard lock(mu_);
    if (objects_.count(key) > 0) return false;
  }
  Status put = Put(key, body);
  if (!put.ok()) return Error(put);
  return true;
}

Result<std::vector<uint8_t>> MemoryStore::Get(const std::string& key, uint64_t max_bytes) {
  if (get_error) {
    Status status = get_error(key);
    if (!status.ok()) return Error(status);
  }
  std::lock_guard lock(mu_);
  gets_++;
  auto it = objects_.find(key);
  if (it == objects_.end()) {
    return Error(StatusCode::kNotFound, "memory://test: no object {}", key);
  }
  if (it->second.size() > max_bytes) {
    return Error(StatusCode::kCorruption, "memory://test: object {} is over {} bytes", key,
                 max_bytes);
  }
  return it->second;
}

Result<std::vector<store::ObjectInfo>> MemoryStore::List(const std::string& prefix) {
  if (list_error) return Error(*list_error);
  std::lock_guard lock(mu_);
  std::vector<store::ObjectInfo> out;
  for (auto it = objects_.lower_bound(prefix); it != objects_.end(); ++it) {
    if (!it->first.starts_with(prefix)) break;
    out.push_back({it->first, it->second.size()});
  }
  return out;
}

Status MemoryStore::Delete(const std::string& key) {
  std::lock_guard lock(mu_);
  if (fail_deletes_after && static_cast<int>(deleted_.size()) >= *fail_deletes_after) {
    return Status(StatusCode::kUnavailable, fmt::format("memory://test: delete {}: 503", key));
  }
  deleted_.push_back(key);
  objects_.erase(key);
  return Status::Ok();
}

std::vector<std::string> MemoryStore::Keys() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> keys;
  for (const auto& [key, value] : objects_) keys.push_back(key);
  return keys;
}

bool MemoryStore::Has(const std::string& key) const {
  std::lock_guard lock(mu_);
  return objects_.count(key) > 0;
}

int MemoryStore::puts() const {
  std::lock_guard lock(mu_);
  return puts_;
}
int MemoryStore::gets() const {
  std::lock_guard lock(mu_);
  return gets_;
}
int MemoryStore::deletes() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(deleted_.size());
}
std::vector<std::string> MemoryStore::deleted() const {
  std::lock_guard lock(mu_);
  return deleted_;
}

std::vector<uint8_t> SysbenchLikeBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out;
  out.reserve(size + 16384);
  uint32_t id = seed * 1000;
  while (out.size() < size) {
    // A page: 38-byte FIL header (checksum, page number, LSN…), rows, free space, trailer.
    const size_t page_start = out.size();
    for (int i = 0; i < 38; ++i) out.push_back(static_cast<uint8_t>(rng()));
    while (out.size() - page_start < 15000) {
      // Record header (5 bytes), id, k, then c and pad as sysbench fills them.
      for (int i = 0; i < 5; ++i) out.push_back(static_cast<uint8_t>(i == 4 ? 0x80 : rng() & 7));
      ++id;
      for (int i = 3; i >= 0; --i) out.push_back(static_cast<uint8_t>(id >> (8 * i)));
      uint32_t k = rng() % 1'000'000;
      for (int i = 3; i >= 0; --i) out.push_back(static_cast<uint8_t>(k >> (8 * i)));
      // Transaction id and roll pointer: 13 bytes that differ per row.
      for (int i = 0; i < 13; ++i) out.push_back(static_cast<uint8_t>(rng()));
      for (int group = 0; group < 10; ++group) {  // c: 10 groups of 11 digits and '-'
        for (int d = 0; d < 11; ++d) out.push_back(static_cast<uint8_t>('0' + rng() % 10));
        if (group < 9) out.push_back('-');
      }
      for (int i = 0; i < 11; ++i) out.push_back(' ');
      for (int group = 0; group < 5; ++group) {  // pad: 5 groups of 11 digits
        for (int d = 0; d < 11; ++d) out.push_back(static_cast<uint8_t>('0' + rng() % 10));
        if (group < 4) out.push_back('-');
      }
    }
    while (out.size() - page_start < 16384 - 8) out.push_back(0);
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(rng()));
  }
  out.resize(size);
  return out;
}

}  // namespace replboot::archive::testing
