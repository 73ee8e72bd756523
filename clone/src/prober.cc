#include "replboot/clone/prober.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <sstream>


namespace replboot::clone {

namespace asio = boost::asio;

namespace {

// Runs on the prober's pool: blocking is fine there.
asio::awaitable<Status> ProbeOnPool(Endpoint peer, const CloneOptions* options,
                                    std::chrono::milliseconds timeout) {
  auto info = ProbeDonor(peer, *options, timeout);
  co_return info ? Status::Ok() : info.error();
}

}  // namespace

AuthenticatedProber::AuthenticatedProber(CloneOptions options, std::chrono::milliseconds timeout,
                                         int threads)
    : options_(std::move(options)),
      timeout_(timeout),
      pool_(static_cast<size_t>(std::max(1, threads))) {
  // One deadline for the whole probe: connect and every handshake step share it.
  options_.connect_timeout = timeout_;
  options_.handshake_timeout = timeout_;
}

AuthenticatedProber::~AuthenticatedProber() { pool_.join(); }

asio::awaitable<Status> AuthenticatedProber::Probe(asio::ip::tcp::endpoint endpoint) {
  Status status = co_await asio::co_spawn(
      pool_, ProbeOnPool(endpoint, &options_, timeout_),
      asio::use_awaitable);
  // The blocking probe cannot be interrupted; a cancellation that arrived meanwhile wins.
  if ((co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none) {
    co_return Status(StatusCode::kCancelled,
                     fmt::format("probe of {} cancelled", discovery::EndpointText(endpoint)));
  }
  co_return status;
}

}  // namespace replboot::clone
