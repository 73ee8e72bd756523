// libFuzzer target for what an S3 service, or a careless config, hands the store: ListObjectsV2
// pages and error documents (from the network), bucket URLs and endpoints (from the config),
// and the strict numbers of both. Each must give an error or a value that keeps its promises,
// never a crash, a sanitizer report or an allocation driven by the input. The first byte picks
// the target:
//   0  ParseListPage: at most 1000 entries, keys 1..1024 bytes with no NUL, sizes that are
//      numbers, a continuation token exactly when truncated
//   1  ParseErrorDoc: never fails; fields bounded by the input
//   2  ParseS3Url: a valid bucket name and a prefix that is "" or ends with '/'
//   3  ParseEndpoint: http or https, and ToString() parses back to the same endpoint
//   4  ParseUint64: agrees with std::to_string on what it accepts
//
// Build: CC=clang CXX=clang++ cmake -DREPLBOOT_FUZZ=ON ... && ninja store_fuzz
// Run:   scripts/ci-fuzz (on the seeds in tests/fuzz/store_corpus).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "s3_request.h"
#include "s3_xml.h"

namespace {

namespace s3 = replboot::store::s3;

void Check(bool ok) {
  if (!ok) std::abort();
}

void FuzzListPage(std::string_view xml) {
  auto page = s3::ParseListPage(xml);
  if (!page) return;
  Check(page->objects.size() <= s3::kMaxEntriesPerPage);
  for (const auto& object : page->objects) {
    Check(!object.key.empty() && object.key.size() <= s3::kMaxKeyBytes);
    Check(object.key.find('\0') == std::string::npos);
  }
  Check(page->truncated == !page->next_token.empty());
  Check(page->next_token.size() <= s3::kMaxTokenBytes);
}

void FuzzErrorDoc(std::string_view xml) {
  auto doc = s3::ParseErrorDoc(xml);
  Check(doc.code.size() <= xml.size() && doc.message.size() <= xml.size());
}

void FuzzS3Url(std::string_view text) {
  auto url = s3::ParseS3Url(std::string(text));
  if (!url) return;
  Check(s3::ValidBucketName(url->bucket));
  Check(url->prefix.empty() || url->prefix.back() == '/');
}

void FuzzEndpoint(std::string_view text) {
  auto endpoint = s3::ParseEndpoint(std::string(text));
  if (!endpoint) return;
  Check(endpoint->scheme == "http" || endpoint->scheme == "https");
  auto again = s3::ParseEndpoint(endpoint->ToString());
  Check(again && again->scheme == endpoint->scheme && again->host == endpoint->host &&
        again->port == endpoint->port);
}

void FuzzUint64(std::string_view text) {
  uint64_t value = 0;
  if (!s3::ParseUint64(text, &value)) return;
  // Accepted text is the number's own decimal form, give or take leading zeros.
  std::string canonical = std::to_string(value);
  std::string_view digits = text;
  while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
  Check(digits == canonical);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0: FuzzListPage(input); break;
    case 1: FuzzErrorDoc(input); break;
    case 2: FuzzS3Url(input); break;
    case 3: FuzzEndpoint(input); break;
    case 4: FuzzUint64(input); break;
  }
  return 0;
}
