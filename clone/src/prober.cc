#include "replboot/clone/prober.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <chrono>
#include <functional>
#include <sstream>
#include <thread>

namespace replboot::clone {

namespace asio = boost::asio;

namespace {

// A probe whose connection was refused, closed or timed out before the donor answered may
// have met a passing flood (its admission closes connections past its caps at once) rather
// than a silent peer: it is tried again within the same budget. An answer (ProbePeer
// returned one) or a failed authentication (kPermissionDenied) is final. Every attempt but
// the last may spend half of what is left connecting and authenticating, the step a flood
// delays; the donor's answer may take all that is left (it queries its server).
constexpr int kProbeAttempts = 3;
constexpr std::chrono::milliseconds kProbeRetryBackoff{100};  // doubled after each attempt
constexpr std::chrono::milliseconds kMinAttemptBudget{200};

Result<ProbeInfo> ProbeWithRetries(const Endpoint& peer, const CloneOptions& options,
                                   std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  auto left = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  };
  std::chrono::milliseconds backoff = kProbeRetryBackoff;
  CloneOptions attempt = options;
  for (int i = 1;; ++i) {
    const bool last = i == kProbeAttempts || left() < 2 * kMinAttemptBudget + backoff;
    const std::chrono::milliseconds handshake = last ? left() : left() / 2;
    attempt.connect_timeout = std::min(options.connect_timeout, handshake);
    attempt.handshake_timeout = std::min(options.handshake_timeout, handshake);
    auto info = ProbePeer(peer, attempt, std::max(left(), std::chrono::milliseconds(1)));
    if (info || last) return info;
    const StatusCode code = info.error().code();
    if (code != StatusCode::kTimeout && code != StatusCode::kUnavailable) return info;
    if (options.stop.stop_requested()) return info;
    std::this_thread::sleep_for(backoff);
    backoff *= 2;
  }
}

// Runs on the prober's pool: blocking is fine there. `record` keeps the answer. The node
// behind `peer` must prove it is `candidate`: otherwise a host on the path could answer every
// candidate's probe with one node (the least advanced), and discovery would take it for all.
asio::awaitable<Status> ProbeOnPool(discovery::Candidate candidate, Endpoint peer,
                                    const CloneOptions* base, std::chrono::milliseconds timeout,
                                    std::function<void(std::optional<ProbeInfo>)> record) {
  CloneOptions options = *base;
  options.expected_ordinal = candidate.ordinal;
  auto info = ProbeWithRetries(peer, options, timeout);
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
