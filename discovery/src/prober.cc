#include "replboot/discovery/prober.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <sstream>

namespace replboot::discovery {

namespace asio = boost::asio;

std::string EndpointText(const asio::ip::tcp::endpoint& endpoint) {
  std::ostringstream out;
  out << endpoint;  // brackets around IPv6 addresses
  return out.str();
}

asio::awaitable<Status> TcpProber::Probe(Candidate /*candidate*/,
                                         asio::ip::tcp::endpoint endpoint) {
  auto executor = co_await asio::this_coro::executor;
  auto socket = std::make_shared<asio::ip::tcp::socket>(executor);
  asio::steady_timer watchdog(executor, timeout_);
  auto timed_out = std::make_shared<bool>(false);
  // A watchdog rather than an awaitable-operator race keeps the socket alive
  // until the connect completes: closing it aborts the connect at once.
  watchdog.async_wait([socket, timed_out](boost::system::error_code ec) {
    if (ec) return;  // the connect finished first
    *timed_out = true;
    boost::system::error_code ignored;
    socket->close(ignored);
  });
  auto [ec] = co_await socket->async_connect(endpoint, asio::as_tuple(asio::use_awaitable));
  watchdog.cancel();
  const std::string where = EndpointText(endpoint);
  if (!ec) {
    boost::system::error_code ignored;
    socket->shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    socket->close(ignored);
    co_return Status::Ok();
  }
  if (*timed_out) {
    co_return Status(StatusCode::kTimeout,
                     fmt::format("no answer from {} within {} ms", where, timeout_.count()));
  }
  if (ec == asio::error::operation_aborted) {
    co_return Status(StatusCode::kCancelled, fmt::format("probe of {} cancelled", where));
  }
  co_return Status(StatusCode::kUnavailable, fmt::format("{}: {}", where, ec.message()));
}

}  // namespace replboot::discovery
