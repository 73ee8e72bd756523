#include "replboot/api/http_get.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace replboot::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

Result<HttpResponse> HttpGet(const std::string& url, std::chrono::milliseconds timeout) {
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0)
    return Error(StatusCode::kInvalidArgument, "url '{}' must start with http://", url);
  std::string rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  std::string target = slash == std::string::npos ? "/" : rest.substr(slash);
  std::string host = authority, port = "80";
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string::npos)
      return Error(StatusCode::kInvalidArgument, "url '{}': unclosed '['", url);
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':')
      port = authority.substr(close + 2);
  } else if (size_t colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return Error(StatusCode::kInvalidArgument, "url '{}' has no host", url);

  asio::io_context io;
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  http::response<http::string_body> res;
  beast::flat_buffer buffer;
  beast::error_code failure;
  std::string failed_step;
  auto fail = [&](const char* step, beast::error_code ec) {
    if (!failure) {
      failure = ec;
      failed_step = step;
    }
  };
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, authority);
  req.set(http::field::user_agent, "replboot");
  req.set(http::field::connection, "close");

  // The whole exchange shares one deadline (async with a stream timeout, run to completion).
  stream.expires_after(timeout);
  resolver.async_resolve(
      host, port, [&](beast::error_code ec, tcp::resolver::results_type results) {
        if (ec) return fail("resolve", ec);
        stream.async_connect(results, [&](beast::error_code ec, const tcp::endpoint&) {
          if (ec) return fail("connect", ec);
          http::async_write(stream, req, [&](beast::error_code ec, size_t) {
            if (ec) return fail("write", ec);
            http::async_read(stream, buffer, res, [&](beast::error_code ec, size_t) {
              if (ec) return fail("read", ec);
            });
          });
        });
      });
  io.run_for(timeout + std::chrono::seconds(1));
  if (!io.stopped())
    return Error(StatusCode::kTimeout, "GET {}: no answer within {} ms", url, timeout.count());
  if (failure) {
    StatusCode code =
        failure == beast::error::timeout ? StatusCode::kTimeout : StatusCode::kUnavailable;
    return Error(code, "GET {}: {}: {}", url, failed_step, failure.message());
  }
  HttpResponse out;
  out.status = static_cast<int>(res.result_int());
  out.body = std::move(res.body());
  return out;
}

}  // namespace replboot::api
