// Test support: an ObjectStore in memory with failure knobs and direct access to its objects
// (to tamper with them), for the archive's tests. The real stores live in store/ (another
// library); this one is private to the archive's tests.
#ifndef REPLBOOT_ARCHIVE_MEMORY_STORE_TEST_UTIL_H_
#define REPLBOOT_ARCHIVE_MEMORY_STORE_TEST_UTIL_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "replboot/store/object_store.h"

namespace replboot::archive::testing {

class MemoryStore : public store::ObjectStore {
 public:
  std::string Describe() const override { return "memory://test"; }
  Status Put(const std::string& key, std::span<const uint8_t> body) override;
  Result<bool> PutIfAbsent(const std::string& key, std::span<const uint8_t> body) override;
  Result<std::vector<uint8_t>> Get(const std::string& key, uint64_t max_bytes) override;
  Result<std::vector<store::ObjectInfo>> List(const std::string& prefix) override;
  Status Delete(const std::string& key) override;

  // Knobs (set before use). A Put (or PutIfAbsent) after `fail_puts_after` successful ones
  // fails with kUnavailable; every Put waits `put_delay` first.
  std::optional<int> fail_puts_after;
  std::chrono::milliseconds put_delay{0};
  // A Get of a key for which this returns a Status other than ok fails with it.
  std::function<Status(const std::string& key)> get_error;
  // Called with the key and body of every Put, before it is stored (e.g. to corrupt it).
  std::function<void(const std::string& key, std::vector<uint8_t>* body)> on_put;
  // A Delete after `fail_deletes_after` successful ones fails with kUnavailable.
  std::optional<int> fail_deletes_after;
  // Lists fail with this when set.
  std::optional<Status> list_error;

  // Direct access, for tests (not for use while another thread uses the store).
  std::map<std::string, std::vector<uint8_t>>& objects() { return objects_; }
  std::vector<std::string> Keys() const;
  bool Has(const std::string& key) const;
  int puts() const;
  int gets() const;
  int deletes() const;
  // The keys Delete was called with, in order.
  std::vector<std::string> deleted() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::vector<uint8_t>> objects_;
  int puts_ = 0, gets_ = 0;
  std::vector<std::string> deleted_;
};

// `size` bytes that compress like InnoDB pages of a sysbench table: 16 KiB pages of rows
// (id, k, c CHAR(120) of digit groups, pad CHAR(60)), with page headers; `seed` varies them.
std::vector<uint8_t> SysbenchLikeBytes(size_t size, uint32_t seed);

}  // namespace replboot::archive::testing

#endif  // REPLBOOT_ARCHIVE_MEMORY_STORE_TEST_UTIL_H_
