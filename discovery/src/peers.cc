#include "replboot/discovery/peers.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <cctype>
#include <cmath>
#include <random>
#include <sstream>

#include "replboot/base/log.h"

namespace replboot::discovery {

namespace asio = boost::asio;
using std::chrono::milliseconds;

Result<Policy> ParsePolicy(std::string_view text) {
  if (text == "nearest-lower") return Policy::kNearestLower;
  if (text == "primary") return Policy::kPrimary;
  if (text == "any-replica") return Policy::kAnyReplica;
  return Error(StatusCode::kInvalidArgument,
               "dns.policy \"{}\" is not one of nearest-lower, primary, any-replica", text);
}

std::string_view PolicyName(Policy policy) {
  switch (policy) {
    case Policy::kNearestLower:
      return "nearest-lower";
    case Policy::kPrimary:
      return "primary";
    case Policy::kAnyReplica:
      return "any-replica";
  }
  return "nearest-lower";
}

std::vector<int64_t> CandidateOrdinals(int64_t ordinal, Policy policy) {
  std::vector<int64_t> ordinals;
  if (ordinal <= 0) return ordinals;
  switch (policy) {
    case Policy::kPrimary:
      ordinals.push_back(0);
      break;
    case Policy::kNearestLower:
    case Policy::kAnyReplica:
      // Same order; any-replica differs in when ordinal 0 may be probed (see header).
      for (int64_t k = ordinal - 1; k >= 0; --k) ordinals.push_back(k);
      break;
  }
  return ordinals;
}

std::vector<Candidate> Candidates(int64_t ordinal, const std::string& prefix,
                                  const std::string& service, Policy policy) {
  std::vector<Candidate> candidates;
  for (int64_t k : CandidateOrdinals(ordinal, policy)) {
    Candidate c;
    c.ordinal = k;
    c.name = fmt::format("{}-{}.{}", prefix, k, service);
    candidates.push_back(std::move(c));
  }
  return candidates;
}

namespace {
std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::optional<uint16_t> SrvPortFor(const std::vector<SrvRecord>& records, std::string_view name) {
  std::string wanted = Lower(name);
  while (!wanted.empty() && wanted.back() == '.') wanted.pop_back();
  if (wanted.empty()) return std::nullopt;
  for (const auto& record : records) {
    std::string target = Lower(record.target);
    while (!target.empty() && target.back() == '.') target.pop_back();
    if (target == wanted ||
        (target.size() > wanted.size() && target.compare(0, wanted.size(), wanted) == 0 &&
         target[wanted.size()] == '.')) {
      return record.port;
    }
  }
  return std::nullopt;
}

std::string_view PeerStateName(PeerState state) {
  switch (state) {
    case PeerState::kNotTried:
      return "not-tried";
    case PeerState::kDnsFailed:
      return "dns-failed";
    case PeerState::kUnreachable:
      return "unreachable";
    case PeerState::kReachable:
      return "reachable";
    case PeerState::kRefused:
      return "refused";
  }
  return "not-tried";
}

std::string PeerReport::Summary() const {
  switch (state) {
    case PeerState::kReachable:
      return fmt::format("reachable at {}", answered ? EndpointText(*answered) : "?");
    case PeerState::kUnreachable:
      return fmt::format("unreachable: {}", detail);
    case PeerState::kRefused:
      return fmt::format("refused: {}", detail);
    case PeerState::kDnsFailed:
      return dns_failure
                 ? fmt::format("{}: {}", LookupErrorName(dns_failure->error), dns_failure->message)
                 : "dns lookup failed";
    case PeerState::kNotTried:
      return detail.empty() ? "not tried" : fmt::format("not tried: {}", detail);
  }
  return "";
}

std::optional<size_t> PickDonor(const std::vector<PeerReport>& reports) {
  for (size_t i = 0; i < reports.size(); ++i) {
    if (reports[i].state == PeerState::kReachable) return i;
  }
  return std::nullopt;
}

milliseconds BackoffDelay(const Backoff& backoff, int attempt, double unit) {
  double base = static_cast<double>(backoff.initial.count()) *
                std::pow(backoff.multiplier, static_cast<double>(std::max(attempt, 1) - 1));
  base = std::min(base, static_cast<double>(backoff.max.count()));
  unit = std::clamp(unit, 0.0, 1.0);
  return milliseconds(static_cast<int64_t>(base / 2 + base / 2 * unit));
}

namespace {

bool Retryable(const PeerReport& report) {
  switch (report.state) {
    case PeerState::kReachable:
    case PeerState::kRefused:
      return false;
    case PeerState::kNotTried:  // held back by primary_after
    case PeerState::kUnreachable:
      return true;
    case PeerState::kDnsFailed:
      return report.dns_failure && report.dns_failure->error != LookupError::kOther &&
             report.dns_failure->error != LookupError::kCancelled;
  }
  return false;
}

asio::awaitable<bool> Cancelled() {
  co_return (co_await asio::this_coro::cancellation_state).cancelled() !=
      asio::cancellation_type::none;
}

void ResetForRound(PeerReport& peer, uint16_t default_port) {
  peer.addresses.clear();
  peer.port = default_port;
  peer.port_from_srv = false;
  peer.dns_failure.reset();
  peer.state = PeerState::kNotTried;
  peer.detail.clear();
  peer.answered.reset();
}

}  // namespace

asio::awaitable<Discovery> DiscoverPeers(Resolver& resolver, Prober& prober,
                                         DiscoverOptions options) {
  auto logger = log::Get("discovery");
  Discovery result;
  for (const auto& candidate : options.candidates) {
    PeerReport report;
    report.candidate = candidate;
    report.port = options.default_port;
    result.peers.push_back(std::move(report));
  }
  if (result.peers.empty()) co_return result;

  std::mt19937_64 generator{std::random_device{}()};
  std::uniform_real_distribution<double> distribution(0.0, 1.0);
  auto draw = [&]() { return options.random ? options.random() : distribution(generator); };
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + options.deadline;

  try {
    for (int round = 1;; ++round) {
      result.rounds = round;
      std::vector<SrvRecord> srv;
      if (!options.srv_name.empty()) {
        auto records = co_await resolver.ResolveSrv(options.srv_name);
        if (records) {
          srv = std::move(*records);
        } else if (records.error().error == LookupError::kCancelled) {
          result.cancelled = true;
          break;
        } else {
          // Ports fall back to the configured one; the addresses may still resolve.
          logger->warn("event=srv_lookup_failed name={} reason={} error={} fallback_port={}",
                       options.srv_name, LookupErrorName(records.error().error),
                       log::Quote(records.error().message), options.default_port);
        }
      }

      bool found = false;
      for (auto& peer : result.peers) {
        ResetForRound(peer, options.default_port);
        if (found && !options.probe_all) continue;
        if (peer.candidate.ordinal == 0 && result.peers.size() > 1 &&
            std::chrono::steady_clock::now() - start < options.primary_after) {
          peer.detail = fmt::format("the primary is tried only after {} ms (any-replica)",
                                    options.primary_after.count());
          continue;
        }
        auto lookup = co_await resolver.ResolveAddresses(peer.candidate.name);
        ++peer.lookups;
        if (!lookup) {
          peer.state = PeerState::kDnsFailed;
          peer.dns_failure = lookup.error();
          if (lookup.error().error == LookupError::kCancelled) {
            result.cancelled = true;
            break;
          }
          continue;
        }
        peer.addresses = std::move(*lookup);
        if (auto port = SrvPortFor(srv, peer.candidate.name)) {
          peer.port = *port;
          peer.port_from_srv = true;
        }
        std::vector<std::string> why;
        bool only_refusals = true;  // every address answered and said no for good
        for (const auto& addr : peer.addresses) {
          asio::ip::tcp::endpoint endpoint(addr, peer.port);
          Status probed = co_await prober.Probe(peer.candidate, endpoint);
          if (probed.ok()) {
            peer.state = PeerState::kReachable;
            peer.answered = endpoint;
            break;
          }
          if (probed.code() == StatusCode::kCancelled) {
            result.cancelled = true;
            break;
          }
          if (probed.code() != StatusCode::kPermissionDenied &&
              probed.code() != StatusCode::kInvalidArgument) {
            only_refusals = false;
          }
          why.push_back(probed.message());
        }
        if (result.cancelled) break;
        if (peer.state == PeerState::kReachable) {
          found = true;
          logger->info("event=peer_reachable name={} ordinal={} endpoint={}", peer.candidate.name,
                       peer.candidate.ordinal, EndpointText(*peer.answered));
        } else {
          peer.state =
              only_refusals && !why.empty() ? PeerState::kRefused : PeerState::kUnreachable;
          peer.detail = fmt::format("{}", fmt::join(why, "; "));
          if (peer.state == PeerState::kRefused) {
            logger->warn("event=peer_refused name={} ordinal={} reason={}", peer.candidate.name,
                         peer.candidate.ordinal, log::Quote(peer.detail));
          }
        }
      }
      if (result.cancelled || co_await Cancelled()) {
        result.cancelled = true;
        break;
      }

      result.donor = PickDonor(result.peers);
      if (result.donor || options.single_round) break;
      if (std::none_of(result.peers.begin(), result.peers.end(), Retryable)) {
        logger->warn("event=no_donor rounds={} reason=\"no failure is worth retrying\"", round);
        break;
      }
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline) {
        result.deadline_passed = true;
        logger->warn("event=no_donor rounds={} reason=deadline deadline_ms={}", round,
                     options.deadline.count());
        break;
      }
      auto delay = std::min<std::chrono::steady_clock::duration>(
          BackoffDelay(options.backoff, round, draw()), deadline - now);
      auto delay_ms = std::chrono::duration_cast<milliseconds>(delay).count();
      for (const auto& peer : result.peers) {
        if (!Retryable(peer)) continue;
        if (peer.state == PeerState::kDnsFailed) {
          logger->info("event=dns_retry name={} reason={} attempt={} delay_ms={} error={}",
                       peer.candidate.name, LookupErrorName(peer.dns_failure->error), round,
                       delay_ms, log::Quote(peer.dns_failure->message));
        } else if (peer.state == PeerState::kUnreachable) {
          logger->info(
              "event=probe_retry name={} reason=unreachable attempt={} delay_ms={} error={}",
              peer.candidate.name, round, delay_ms, log::Quote(peer.detail));
        }
      }
      asio::steady_timer timer(co_await asio::this_coro::executor, delay);
      auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (ec || co_await Cancelled()) {
        result.cancelled = true;
        break;
      }
    }
  } catch (const boost::system::system_error& e) {
    // co_await throws operation_aborted once the coroutine has been cancelled.
    result.cancelled = true;
    if (e.code() != asio::error::operation_aborted) {
      logger->error("event=discovery_failed error={}", log::Quote(e.what()));
    }
  }
  if (result.cancelled) logger->info("event=discovery_cancelled rounds={}", result.rounds);
  co_return result;
}

std::optional<Discovery> RunDiscovery(boost::asio::io_context& io, Resolver& resolver,
                                      Prober& prober, const DiscoverOptions& options,
                                      std::stop_token stop) {
  std::optional<Discovery> found;
  boost::asio::cancellation_signal cancel;
  io.restart();
  boost::asio::co_spawn(
      io, DiscoverPeers(resolver, prober, options),
      boost::asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, Discovery d) {
        if (!e) found = std::move(d);
      }));
  std::stop_callback on_stop(stop, [&] {
    boost::asio::post(io, [&] {
      cancel.emit(boost::asio::cancellation_type::terminal);
      resolver.Cancel();
    });
  });
  io.run();
  return found;
}

}  // namespace replboot::discovery
