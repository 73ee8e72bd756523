// A map under a mutex, with the same key rules and error codes as the real stores.
#include <map>
#include <mutex>

#include "replboot/store/object_store.h"

namespace replboot::store {

namespace {

class MemoryStore : public ObjectStore {
 public:
  std::string Describe() const override { return "memory://"; }

  Status Put(const std::string& key, std::span<const uint8_t> body) override {
    REPLBOOT_RETURN_STATUS_IF_ERROR(CheckKey(key));
    std::lock_guard lock(mu_);
    objects_[key].assign(body.begin(), body.end());
    return Status::Ok();
  }

  Result<bool> PutIfAbsent(const std::string& key, std::span<const uint8_t> body) override {
    REPLBOOT_RETURN_IF_ERROR(CheckKey(key));
    std::lock_guard lock(mu_);
    return objects_.try_emplace(key, body.begin(), body.end()).second;
  }

  Result<std::vector<uint8_t>> Get(const std::string& key, uint64_t max_bytes) override {
    REPLBOOT_RETURN_IF_ERROR(CheckKey(key));
    std::lock_guard lock(mu_);
    auto it = objects_.find(key);
    if (it == objects_.end()) return Error(StatusCode::kNotFound, "get {} in memory://: no such object", key);
    if (it->second.size() > max_bytes) {
      return Error(StatusCode::kCorruption, "get {} in memory://: {} bytes, over the {} allowed",
                   key, it->second.size(), max_bytes);
    }
    return it->second;
  }

  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override {
    std::lock_guard lock(mu_);
    std::vector<ObjectInfo> out;
    for (auto it = objects_.lower_bound(prefix); it != objects_.end() && it->first.starts_with(prefix);
         ++it) {
      out.push_back(ObjectInfo{it->first, it->second.size()});
    }
    return out;
  }

  Status Delete(const std::string& key) override {
    REPLBOOT_RETURN_STATUS_IF_ERROR(CheckKey(key));
    std::lock_guard lock(mu_);
    objects_.erase(key);
    return Status::Ok();
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::vector<uint8_t>> objects_;
};

}  // namespace

std::unique_ptr<ObjectStore> MakeMemoryStore() { return std::make_unique<MemoryStore>(); }

}  // namespace replboot::store
