#include "replboot/clone/prober.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <functional>
#include <sstream>


namespace replboot::clone {

namespace asio = boost::asio;

namespace {

// Runs on the prober's pool: blocking is fine there. `record` keeps the answer. The node
// behind `peer` must prove it is `candidate`: otherwise a host on the path could answer every
// candidate's probe with one node (the least advanced), and discovery would take it for all.
asio::awaitable<Status> ProbeOnPool(discovery::Candidate candidate, Endpoint peer,
                                    const CloneOptions* base, std::chrono::milliseconds timeout,
                                    std::function<void(std::optional<ProbeInfo>)> record) {
  CloneOptions options = *base;
  options.expected_ordinal = candidate.ordinal;
  auto info = ProbePeer(peer, options, timeout);
  if (!info) {
    record(std::nullopt);
    co_return info.error();
  }
  record(*info);
  co_return DonorRefusal(discovery::EndpointText(peer), *info, options);
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

asio::awaitable<Status> AuthenticatedProber::Probe(discovery::Candidate candidate,
                                                   asio::ip::tcp::endpoint endpoint) {
  Status status = co_await asio::co_spawn(
      pool_,
      ProbeOnPool(std::move(candidate), endpoint, &options_, timeout_,
                  [this, endpoint](std::optional<ProbeInfo> info) { Record(endpoint, info); }),
      asio::use_awaitable);
  // The blocking probe cannot be interrupted; a cancellation that arrived meanwhile wins.
  if ((co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none) {
    co_return Status(StatusCode::kCancelled,
                     fmt::format("probe of {} cancelled", discovery::EndpointText(endpoint)));
  }
  co_return status;
}

std::optional<ProbeInfo> AuthenticatedProber::Answer(const asio::ip::tcp::endpoint& endpoint) const {
  std::lock_guard lock(mu_);
  if (auto it = answers_.find(endpoint); it != answers_.end()) return it->second;
  return std::nullopt;
}

void AuthenticatedProber::Forget() {
  std::lock_guard lock(mu_);
  answers_.clear();
}

void AuthenticatedProber::Record(const asio::ip::tcp::endpoint& endpoint,
                                 std::optional<ProbeInfo> info) {
  std::lock_guard lock(mu_);
  if (info) {
    answers_[endpoint] = std::move(*info);
  } else {
    answers_.erase(endpoint);
  }
}

}  // namespace replboot::clone
