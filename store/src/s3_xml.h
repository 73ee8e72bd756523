// The two XML documents an S3 service sends us: a ListObjectsV2 page and an error. Both come
// from the network, so both parsers treat their input as hostile: libexpat with no DTD (a
// DOCTYPE is refused, so no entity can be declared or expanded), bounded nesting, bounded
// text per element, strict numbers.
#ifndef REPLBOOT_STORE_S3_XML_H_
#define REPLBOOT_STORE_S3_XML_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "replboot/base/status.h"

namespace replboot::store::s3 {

inline constexpr size_t kMaxKeyBytes = 1024;     // S3's own limit on a key
inline constexpr size_t kMaxTokenBytes = 4096;   // a continuation token
inline constexpr size_t kMaxXmlDepth = 16;
inline constexpr size_t kMaxEntriesPerPage = 1000;

struct ListedObject {
  std::string key;  // the full key, as the service names it
  uint64_t size = 0;
};

struct ListPage {
  std::vector<ListedObject> objects;
  bool truncated = false;
  std::string next_token;  // set when truncated
};

// <ListBucketResult> with <Contents><Key/><Size/></Contents>*, <IsTruncated> and, when it is
// "true", a <NextContinuationToken>. Every <Contents> needs exactly one Key (1..1024 bytes,
// no NUL) and one Size (a plain decimal uint64); at most 1000 of them. kCorruption names
// what is wrong.
Result<ListPage> ParseListPage(std::string_view xml);

struct ErrorDoc {
  std::string code;     // "NoSuchBucket"; "" when the body is not an S3 <Error>
  std::string message;  // free text from the service, Printable() before any use
};
// Never fails: a body that is not an <Error> document gives empty fields.
ErrorDoc ParseErrorDoc(std::string_view xml);

}  // namespace replboot::store::s3

#endif  // REPLBOOT_STORE_S3_XML_H_
