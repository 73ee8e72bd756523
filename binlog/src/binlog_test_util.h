// Helpers of the binlog tests: real binlog files recorded from mariadbd split into events,
// and events built by hand with their checksums.
#ifndef REPLBOOT_BINLOG_TEST_UTIL_H_
#define REPLBOOT_BINLOG_TEST_UTIL_H_

#include <zlib.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace replboot::binlog::testing {

inline std::vector<uint8_t> ReadFile(const std::string& name) {
  std::ifstream in(std::string(REPLBOOT_BINLOG_TESTDATA) + "/" + name, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// The events of a binlog file (after its 4-byte magic); empty when the file is malformed.
inline std::vector<std::vector<uint8_t>> SplitEvents(const std::vector<uint8_t>& file) {
  std::vector<std::vector<uint8_t>> out;
  size_t at = 4;
  while (at + 19 <= file.size()) {
    const uint32_t size = file[at + 9] | (file[at + 10] << 8) | (file[at + 11] << 16) |
                          (static_cast<uint32_t>(file[at + 12]) << 24);
    if (size < 19 || at + size > file.size()) return {};
    out.emplace_back(file.begin() + at, file.begin() + at + size);
    at += size;
  }
  return out;
}

inline void PutU32(std::vector<uint8_t>& v, size_t at, uint32_t x) {
  for (int i = 0; i < 4; ++i) v[at + i] = static_cast<uint8_t>(x >> (8 * i));
}
inline void AppendU32(std::vector<uint8_t>& v, uint32_t x) {
  for (int i = 0; i < 4; ++i) v.push_back(static_cast<uint8_t>(x >> (8 * i)));
}
inline void AppendU64(std::vector<uint8_t>& v, uint64_t x) {
  for (int i = 0; i < 8; ++i) v.push_back(static_cast<uint8_t>(x >> (8 * i)));
}

// An event with a CRC-32 (when `crc`) and a consistent size.
inline std::vector<uint8_t> MakeEvent(uint8_t type, const std::vector<uint8_t>& body,
                                      uint32_t server_id = 100, uint32_t timestamp = 1'796'647'861,
                                      uint16_t flags = 0, bool crc = true) {
  std::vector<uint8_t> e;
  e.reserve(19 + body.size() + 4);
  e.resize(19, 0);
  PutU32(e, 0, timestamp);
  e[4] = type;
  PutU32(e, 5, server_id);
  e[17] = static_cast<uint8_t>(flags);
  e[18] = static_cast<uint8_t>(flags >> 8);
  for (uint8_t b : body) e.push_back(b);  // (insert() trips GCC 12's -Warray-bounds)
  const uint32_t size = static_cast<uint32_t>(e.size() + (crc ? 4 : 0));
  PutU32(e, 9, size);
  if (crc) {
    const uint32_t c = static_cast<uint32_t>(crc32(0, e.data(), static_cast<uInt>(e.size())));
    AppendU32(e, c);
  }
  return e;
}

// Recomputes the CRC after a test changed a byte on purpose (to test what the CRC does not).
inline void FixCrc(std::vector<uint8_t>& e) {
  const uint32_t c = static_cast<uint32_t>(crc32(0, e.data(), static_cast<uInt>(e.size() - 4)));
  PutU32(e, e.size() - 4, c);
}

inline std::vector<uint8_t> GtidBody(uint64_t seq, uint32_t domain, uint8_t flags) {
  std::vector<uint8_t> b;
  AppendU64(b, seq);
  AppendU32(b, domain);
  b.push_back(flags);
  b.insert(b.end(), 6, 0);  // what 10.x pads the post-header with
  return b;
}

inline std::vector<uint8_t> QueryBody(const std::string& db, const std::string& statement) {
  std::vector<uint8_t> b(13, 0);
  b[8] = static_cast<uint8_t>(db.size());
  b.insert(b.end(), db.begin(), db.end());
  b.push_back(0);
  b.insert(b.end(), statement.begin(), statement.end());
  return b;
}

inline std::vector<uint8_t> XidBody(uint64_t xid) {
  std::vector<uint8_t> b;
  AppendU64(b, xid);
  return b;
}

}  // namespace replboot::binlog::testing

#endif  // REPLBOOT_BINLOG_TEST_UTIL_H_
