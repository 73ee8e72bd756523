// A minimal HTTP/1.1 GET client for `replboot status` and tests (plain http only).
#ifndef REPLBOOT_API_HTTP_GET_H_
#define REPLBOOT_API_HTTP_GET_H_

#include <chrono>
#include <string>

#include "replboot/base/status.h"

namespace replboot::api {

struct HttpResponse {
  int status = 0;
  std::string body;
};

// GET `url` ("http://host:port/path?query"), with `timeout` for the whole exchange.
// kUnavailable naming the URL when the peer cannot be reached or answers garbage.
Result<HttpResponse> HttpGet(const std::string& url, std::chrono::milliseconds timeout);

}  // namespace replboot::api

#endif  // REPLBOOT_API_HTTP_GET_H_
