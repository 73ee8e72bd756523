#include "replboot/clone/cluster_id.h"

#include <openssl/rand.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "replboot/base/files.h"

namespace replboot::clone {

namespace {

constexpr size_t kUuidLength = 36;

bool DashAt(size_t i) { return i == 8 || i == 13 || i == 18 || i == 23; }

std::string IdPath(const std::string& dir) {
  return dir + (dir.ends_with('/') ? "" : "/") + std::string(kClusterIdName);
}

}  // namespace

Result<std::string> NewClusterId() {
  std::array<unsigned char, 16> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
    return Error(StatusCode::kInternal, "no random bytes for a cluster id (RAND_bytes failed)");
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x40);  // version 4
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3f) | 0x80);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  id.reserve(kUuidLength);
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) id.push_back('-');
    id.push_back(kHex[bytes[i] >> 4]);
    id.push_back(kHex[bytes[i] & 0x0f]);
  }
  return id;
}

bool ValidClusterId(std::string_view text) {
  if (text.size() != kUuidLength) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (DashAt(i) ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Result<std::optional<std::string>> ReadClusterId(const std::string& dir) {
  const std::string path = IdPath(dir);
  if (::access(path.c_str(), F_OK) != 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return Error(ErrnoStatus(errno, "access " + path));
  }
  auto text = files::ReadFile(path);
  if (!text) return Error(text.error());
  std::string id = *text;
  if (id.ends_with('\n')) id.pop_back();
  if (!ValidClusterId(id)) {
    return Error(StatusCode::kCorruption, "{} does not hold a cluster id (a lower-case UUID)",
                 path);
  }
  return std::optional<std::string>(std::move(id));
}

Status WriteClusterId(const std::string& dir, const std::string& id,
                      const std::optional<FileOwner>& owner) {
  if (!ValidClusterId(id)) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("cluster id {} is not a lower-case UUID", QuotedBytes(id)));
  }
  const std::string path = IdPath(dir);
  REPLBOOT_RETURN_STATUS_IF_ERROR(files::WriteFileAtomic(path, id + "\n", 0644));
  if (owner && ::lchown(path.c_str(), owner->uid, owner->gid) != 0)
    return ErrnoStatus(errno, "chown " + path);
  return files::FsyncDir(dir);
}

}  // namespace replboot::clone
