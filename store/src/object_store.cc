#include "replboot/store/object_store.h"

#include <string_view>

#include "store_internal.h"

namespace replboot::store {

std::string Printable(std::string_view text, size_t max) {
  std::string out;
  for (unsigned char c : text.substr(0, max)) {
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  if (text.size() > max) out += "...";
  return out;
}

Status CheckKey(const std::string& key) {
  auto bad = [&](std::string_view why) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("object key \"{}\": {}", Printable(key), why));
  };
  if (key.empty()) return bad("empty");
  if (key.size() > 1024) return bad("longer than 1024 bytes");
  if (key.find('\0') != std::string::npos) return bad("contains a NUL byte");
  if (key.front() == '/') return bad("starts with '/'");
  if (key.find("//") != std::string::npos) return bad("contains \"//\"");
  size_t pos = 0;
  while (pos <= key.size()) {
    size_t end = key.find('/', pos);
    if (end == std::string::npos) end = key.size();
    std::string_view part(key.data() + pos, end - pos);
    if (part == "." || part == "..") return bad("has a \".\" or \"..\" component");
    pos = end + 1;
  }
  return Status::Ok();
}

Result<std::unique_ptr<ObjectStore>> OpenStore(const StoreOptions& options) {
  constexpr std::string_view kFile = "file://";
  const std::string& url = options.url;
  if (std::string_view(url).starts_with(kFile)) {
    std::string path = url.substr(kFile.size());
    if (path.empty() || path.front() != '/') {
      return Error(StatusCode::kInvalidArgument,
                   "store URL {}: a file store needs an absolute path (file:///path)",
                   Printable(url));
    }
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    if (path != "/") {
      if (Status s = CheckKey(path.substr(1)); !s.ok()) {
        return Error(StatusCode::kInvalidArgument, "store URL {}: path: {}", Printable(url),
                     s.message());
      }
    }
    return OpenFileStore(path);
  }
  if (std::string_view(url).starts_with("s3://")) return OpenS3Store(options);
  return Error(StatusCode::kInvalidArgument,
               "store URL {}: not file:///path or s3://bucket[/prefix]", Printable(url));
}

}  // namespace replboot::store
