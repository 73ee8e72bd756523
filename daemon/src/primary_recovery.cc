#include "replboot/daemon/primary_recovery.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "replboot/binlog/file.h"
#include "replboot/binlog/gtid.h"
#include "replboot/archive/histories.h"
#include "replboot/base/files.h"
#include "replboot/base/log.h"
#include "replboot/base/process.h"
#include "replboot/clone/clone.h"
#include "replboot/clone/prober.h"
#include "replboot/daemon/replication_wiring.h"
#include "replboot/db/client.h"
#include "replboot/db/dialect.h"
#include "replboot/discovery/peers.h"
#include "replboot/replication/gtid.h"

namespace replboot::daemon {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

auto Log() { return log::Get("daemon"); }

std::string JoinPath(const std::string& dir, const std::string& name) {
  return dir + (dir.ends_with('/') ? "" : "/") + name;
}

std::string Names(const std::vector<const PeerFacts*>& peers) {
  std::string out;
  for (const PeerFacts* p : peers) out += (out.empty() ? "" : ", ") + p->name;
  return out;
}

}  // namespace

std::string_view PeerDnsName(PeerFacts::Dns dns) {
  switch (dns) {
    case PeerFacts::Dns::kAbsent:
      return "absent";
    case PeerFacts::Dns::kPresent:
      return "present";
    case PeerFacts::Dns::kUnknown:
      return "unknown";
  }
  return "unknown";
}

std::string_view RecoveryPlanName(RecoveryPlan plan) {
  switch (plan) {
    case RecoveryPlan::kInitialize:
      return "initialize";
    case RecoveryPlan::kClone:
      return "clone";
    case RecoveryPlan::kWait:
      return "wait";
    case RecoveryPlan::kConflict:
      return "conflict";
  }
  return "wait";
}

std::string InitializeEmptyOverridePath(const std::string& datadir) {
  std::string base = datadir;
  while (base.size() > 1 && base.ends_with('/')) base.pop_back();
  return base + kInitializeEmptySuffix;
}

Result<replication::GtidSet> ExecutedGtids(const clone::ProbeInfo& answer, Flavour flavour) {
  auto logged = replication::GtidSet::Parse(answer.gtid_binlog_state, flavour);
  if (!logged) return Error(logged.error());
  auto position = replication::GtidSet::Parse(answer.gtid_current_pos, flavour);
  if (!position) return Error(position.error());
  return logged->Union(*position);
}

std::string_view UnsettledReason(const PeerFacts& p, Flavour flavour, int64_t highest_in_dns) {
  if (p.dns == PeerFacts::Dns::kAbsent) return p.ordinal < highest_in_dns ? "not_in_dns_yet" : "";
  if (!p.answer) {
    if (p.auth_refused) return "refused_our_secret";
    return p.dns == PeerFacts::Dns::kUnknown ? "dns_failing" : "silent";
  }
  // An answer with an error says nothing of what the peer holds, whatever has_data says (a
  // peer from before has_data came from the disk reported false whenever its server failed).
  if (!p.answer->error.empty()) return "answered_error";
  if (!p.answer->has_data) return "";
  if (!p.refusal.empty()) return "cannot_serve";
  if (!ExecutedGtids(*p.answer, flavour)) return "no_position";
  return "";
}

RecoveryDecision DecidePrimaryRecovery(const std::vector<PeerFacts>& peers, Flavour flavour,
                                       bool wait_over, bool initialize_override) {
  RecoveryDecision d;
  int64_t highest_in_dns = 0;
  bool all_absent = true;
  for (const PeerFacts& p : peers) {
    if (p.dns == PeerFacts::Dns::kAbsent) continue;
    all_absent = false;
    highest_in_dns = std::max(highest_in_dns, p.ordinal);
  }
  // Who leaves the decision open, and why.
  std::vector<const PeerFacts*> unsettled;
  std::vector<const PeerFacts*> pending;  // unsettled, and possibly a better donor
  for (const PeerFacts& p : peers) {
    std::string_view why = UnsettledReason(p, flavour, highest_in_dns);
    if (why.empty()) continue;
    unsettled.push_back(&p);
    if (why != "cannot_serve") pending.push_back(&p);
    std::string detail = p.answer && !p.answer->error.empty() ? p.answer->error
                         : !p.refusal.empty()                  ? p.refusal
                                                               : p.detail;
    d.waiting_for.push_back({p.name, std::string(why), std::move(detail)});
  }
  auto waiting_words = [&] {
    std::string out;
    for (const auto& w : d.waiting_for)
      out += fmt::format("{}{} ({})", out.empty() ? "" : ", ", w.name, w.why);
    return out;
  };

  if (initialize_override) {
    d.plan = RecoveryPlan::kInitialize;
    d.reason = "operator_override";
    d.detail = fmt::format(
        "the operator asked to initialize an empty database, discarding the peers' data{}",
        d.waiting_for.empty() ? "" : " (unsettled: " + waiting_words() + ")");
    return d;
  }

  // Who holds data, and of which cluster.
  std::vector<const PeerFacts*> with_data;
  std::map<std::string, std::vector<const PeerFacts*>> by_id;
  for (const PeerFacts& p : peers) {
    if (!p.answer || !p.answer->has_data || !p.answer->error.empty() || !p.refusal.empty())
      continue;
    with_data.push_back(&p);
    if (!p.answer->cluster_id.empty()) by_id[p.answer->cluster_id].push_back(&p);
  }
  if (by_id.size() > 1) {
    d.plan = RecoveryPlan::kConflict;
    d.reason = "clusters_conflict";
    std::string list;
    for (const auto& [id, holders] : by_id)
      list += fmt::format("{}{} on {}", list.empty() ? "" : "; ", id, Names(holders));
    d.detail = fmt::format(
        "peers hold data of different clusters ({}): which one is this cluster's cannot be told "
        "from here, so neither is cloned and nothing is initialized; remove the stray datadir",
        list);
    return d;
  }
  // Candidates: this cluster's (the one id), or every holder when no one has an id (a
  // cluster from before cluster ids).
  std::vector<const PeerFacts*> eligible = by_id.empty() ? with_data : by_id.begin()->second;
  std::vector<std::pair<const PeerFacts*, replication::GtidSet>> candidates;
  for (const PeerFacts* p : eligible) {
    auto set = ExecutedGtids(*p->answer, flavour);
    if (set) candidates.emplace_back(p, std::move(*set));
  }

  if (!candidates.empty()) {
    if (!pending.empty() && !wait_over) {
      d.plan = RecoveryPlan::kWait;
      d.reason = "waiting_for_peers";
      d.detail = fmt::format(
          "{} hold(s) this cluster's data; waiting up to bootstrap.recover_wait for {}, which "
          "may be further ahead",
          Names(eligible), waiting_words());
      return d;
    }
    // The most advanced: a state that holds every other one; else (diverged states) the most
    // transactions. Peers are in ordinal order and only a strictly better one replaces the
    // best: ties go to the lowest ordinal.
    const std::pair<const PeerFacts*, replication::GtidSet>* best = nullptr;
    for (const auto& c : candidates) {
      if (std::all_of(candidates.begin(), candidates.end(),
                      [&](const auto& o) { return c.second.Contains(o.second); })) {
        best = &c;
        break;
      }
    }
    bool diverged = false;
    if (!best) {
      diverged = true;
      for (const auto& c : candidates) {
        if (!best || c.second.TransactionCount() > best->second.TransactionCount()) best = &c;
      }
    }
    d.plan = RecoveryPlan::kClone;
    d.reason = "most_advanced_peer";
    d.donor = static_cast<size_t>(best->first - peers.data());
    d.detail = fmt::format(
        "{} holds this cluster's data{} and executed {}{}{}{}", best->first->name,
        best->first->answer->cluster_id.empty()
            ? " (no cluster id: a cluster from before ids)"
            : fmt::format(" (cluster {})", best->first->answer->cluster_id),
        log::Printable(best->second.ToString()),
        candidates.size() > 1 ? fmt::format(", the most advanced of {}", Names(eligible)) : "",
        diverged ? "; the peers' histories diverged: the one with the most transactions wins" : "",
        pending.empty() ? "" : "; bootstrap.recover_wait is over for " + waiting_words());
    return d;
  }

  if (all_absent) {
    d.plan = RecoveryPlan::kInitialize;
    d.reason = "no_peers_in_dns";
    d.detail = peers.empty() ? "no peer to ask"
                             : "no other ordinal is in DNS: a new cluster, initialized at once";
    return d;
  }
  if (unsettled.empty()) {
    d.plan = RecoveryPlan::kInitialize;
    d.reason = "peers_without_data";
    d.detail = "every peer in DNS answered, authenticated, and none holds data";
    return d;
  }
  // Fail closed: any of them may hold every row. No timeout ends this.
  d.plan = RecoveryPlan::kWait;
  d.reason = "waiting_for_peers";
  d.detail = fmt::format(
      "not initializing while a peer may hold this cluster's data: waiting for {}; to "
      "initialize an empty database anyway, discarding the peers' data, write \"{}\" into "
      "<datadir>{}",
      waiting_words(), kInitializeEmptyPhrase, kInitializeEmptySuffix);
  return d;
}

bool PromotionPending(const std::string& datadir) {
  struct stat st;
  return ::lstat(JoinPath(datadir, kPromotionMarker).c_str(), &st) == 0;
}

namespace {

// How far past the highest ordinal in DNS the survey looks: a pod being recreated may be
// missing from DNS for a moment without ending the StatefulSet there.
constexpr int64_t kScanGap = 3;
constexpr int64_t kMaxOrdinal = 128;
constexpr milliseconds kProbeTimeout{3000};

// One survey: resolves and probes ordinals 1.. until kScanGap names past the highest present
// one, every candidate once (a single discovery round each batch).
class Survey {
 public:
  static Result<std::unique_ptr<Survey>> Create(const NodeSettings& settings) {
    std::unique_ptr<Survey> s(new Survey());
    auto clone_options = CloneOptionsFor(settings);
    if (!clone_options) return Error(clone_options.error());
    s->clone_ = std::move(*clone_options);
    // The peers of a lost primary cannot be ready (their source is gone): the survey's own
    // table decides which one is cloned.
    s->clone_.require_ready_donor = false;
    auto discover = DiscoverOptionsFor(settings);
    if (!discover) return Error(discover.error());
    s->discover_ = std::move(*discover);
    s->discover_.probe_all = true;
    s->discover_.single_round = true;  // one round per batch: RecoverPrimary repeats
    s->discover_.primary_after = milliseconds(0);
    auto resolver =
        discovery::AresResolver::Create(s->io_.get_executor(), AresOptionsFor(settings.config));
    if (!resolver) return Error(resolver.error());
    s->resolver_ = std::move(*resolver);
    s->prober_ = std::make_unique<clone::AuthenticatedProber>(s->clone_, kProbeTimeout);
    s->prefix_ = settings.identity.prefix;
    s->service_ = settings.config.cluster.service;
    return s;
  }
  ~Survey() {
    prober_.reset();
    resolver_.reset();
  }

  const clone::CloneOptions& clone_options() const { return clone_; }

  // nullopt when stopped.
  std::optional<std::vector<PeerFacts>> Run(std::stop_token stop) {
    std::vector<PeerFacts> facts;
    prober_->Forget();
    int64_t next = 1;
    int64_t limit = kScanGap;
    while (next <= limit) {
      discovery::DiscoverOptions batch = discover_;
      batch.candidates.clear();
      for (int64_t k = next; k <= limit; ++k) {
        batch.candidates.push_back({k, fmt::format("{}-{}.{}", prefix_, k, service_)});
      }
      auto found = Discover(batch, stop);
      if (!found) return std::nullopt;
      for (const auto& report : found->peers) facts.push_back(FactsOf(report));
      int64_t highest = 0;
      for (const auto& f : facts) {
        if (f.dns != PeerFacts::Dns::kAbsent) highest = std::max(highest, f.ordinal);
      }
      next = limit + 1;
      limit = std::min(kMaxOrdinal, std::max(limit, highest + kScanGap));
    }
    return facts;
  }

  std::optional<clone::Endpoint> EndpointOf(const PeerFacts& facts) const {
    auto it = endpoints_.find(facts.ordinal);
    if (it == endpoints_.end()) return std::nullopt;
    return it->second;
  }

 private:
  Survey() = default;

  std::optional<discovery::Discovery> Discover(const discovery::DiscoverOptions& options,
                                               std::stop_token stop) {
    auto found = discovery::RunDiscovery(io_, *resolver_, *prober_, options, stop);
    if (!found || found->cancelled || stop.stop_requested()) return std::nullopt;
    return found;
  }

  PeerFacts FactsOf(const discovery::PeerReport& report) {
    PeerFacts f;
    f.ordinal = report.candidate.ordinal;
    f.name = report.candidate.name;
    if (report.state == discovery::PeerState::kDnsFailed) {
      const bool absent =
          report.dns_failure && (report.dns_failure->error == discovery::LookupError::kNxDomain ||
                                 report.dns_failure->error == discovery::LookupError::kNoData);
      f.dns = absent ? PeerFacts::Dns::kAbsent : PeerFacts::Dns::kUnknown;
      f.detail = report.Summary();
      return f;
    }
    // Refused without an answer: our secret (or its proof of the node's identity) failed.
    f.auth_refused = report.state == discovery::PeerState::kRefused;
    f.dns = report.addresses.empty() ? PeerFacts::Dns::kUnknown : PeerFacts::Dns::kPresent;
    f.detail = report.Summary();
    for (const auto& address : report.addresses) {
      clone::Endpoint endpoint(address, report.port);
      if (auto answer = prober_->Answer(endpoint)) {
        f.answer = std::move(*answer);
        endpoints_[f.ordinal] = endpoint;
        // Refused for good (another flavour or version): never a donor. Busy or down is not.
        if (report.state == discovery::PeerState::kRefused) f.refusal = report.detail;
        break;
      }
    }
    return f;
  }

  asio::io_context io_;  // the resolver's and discovery's loop, run by Run()'s thread
  std::unique_ptr<discovery::AresResolver> resolver_;
  std::unique_ptr<clone::AuthenticatedProber> prober_;
  discovery::DiscoverOptions discover_;
  clone::CloneOptions clone_;
  std::string prefix_;
  std::string service_;
  std::map<int64_t, clone::Endpoint> endpoints_;
};

// While a wait goes on unchanged, one log line every this many rounds (about a minute).
constexpr int kLogEvery = 30;

// The override file holds the phrase (surrounding whitespace aside). A file with anything
// else is logged and ignored: the choice must be named, not implied by a stray file.
bool InitializeEmptyOverrideAsked(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return false;
  if (!S_ISREG(st.st_mode)) {
    Log()->warn("event=primary_recovery_override_ignored file={} reason={}", log::Quote(path),
                log::Quote("not a regular file"));
    return false;
  }
  auto text = files::ReadFile(path);
  if (!text) {
    Log()->warn("event=primary_recovery_override_ignored file={} reason={}", log::Quote(path),
                log::Quote(text.error().message()));
    return false;
  }
  std::string_view phrase = *text;
  while (!phrase.empty() && std::isspace(static_cast<unsigned char>(phrase.front())))
    phrase.remove_prefix(1);
  while (!phrase.empty() && std::isspace(static_cast<unsigned char>(phrase.back())))
    phrase.remove_suffix(1);
  if (phrase != kInitializeEmptyPhrase) {
    Log()->warn("event=primary_recovery_override_ignored file={} reason={}", log::Quote(path),
                log::Quote(fmt::format("it must hold exactly \"{}\"", kInitializeEmptyPhrase)));
    return false;
  }
  return true;
}

Status ConsumeInitializeEmptyOverride(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return ErrnoStatus(errno, "removing the override file " + path);
  const size_t slash = path.find_last_of('/');
  return files::FsyncDir(slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash));
}

// Sleeps `d`, woken at once by a stop request; false when stopped.
bool SleepFor(milliseconds d, std::stop_token stop) {
  std::mutex mu;
  std::condition_variable_any wake;
  std::unique_lock lock(mu);
  wake.wait_for(lock, stop, d, [] { return false; });
  return !stop.stop_requested();
}

std::string PeersLine(const std::vector<PeerFacts>& peers) {
  std::string out;
  for (const auto& p : peers) {
    out += fmt::format("{}{}:{}", out.empty() ? "" : " ", p.name, PeerDnsName(p.dns));
    if (p.answer) {
      out += fmt::format("/{}/{}/{}", p.answer->has_data ? "data" : "no-data",
                         p.answer->cluster_id.empty() ? "no-id" : p.answer->cluster_id,
                         p.answer->gtid_binlog_state.empty() ? "-" : p.answer->gtid_binlog_state);
    }
  }
  return out;
}

}  // namespace

Status WritePromotionMarker(const std::string& staging, const std::string& source,
                            const std::string& gtid_state, const std::string& cluster_id,
                            const std::optional<OsUser>& owner, const nlohmann::json& extra) {
  nlohmann::json marker = extra;
  marker["donor"] = source;
  marker["gtid_state"] = gtid_state;
  marker["cluster_id"] = cluster_id;
  const std::string path = JoinPath(staging, kPromotionMarker);
  REPLBOOT_RETURN_STATUS_IF_ERROR(files::WriteFileAtomic(
      path, marker.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", 0640));
  if (owner && ::chown(path.c_str(), owner->uid, owner->gid) != 0)
    return ErrnoStatus(errno, "chown " + path);
  return files::FsyncDir(staging);
}

std::chrono::milliseconds StoreRetryDelay(const RecoveryOptions& options, int failures) {
  std::chrono::milliseconds delay = options.round_interval;
  for (int i = 1; i < failures && delay < options.store_retry_max; ++i) delay *= 2;
  return std::min(delay, std::max(options.store_retry_max, options.round_interval));
}

Result<bool> RecoverPrimary(const NodeSettings& settings, const RecoveryOptions& options,
                            std::stop_token stop,
                            const std::function<void(const RecoveryView&)>& on_decision,
                            const clone::CloneProgressCallback& on_progress) {
  auto survey = Survey::Create(settings);
  if (!survey) return Error(survey.error().WithContext("asking the peers"));
  const auto start = Clock::now();
  const std::string override_path = InitializeEmptyOverridePath(settings.config.mysql.datadir);
  RecoveryView view;
  view.override_file = override_path;
  std::string last_logged;  // the decision's words, so an unchanged wait is logged less often
  int store_failures = 0;   // in a row
  for (int round = 1;; ++round) {
    auto peers = (*survey)->Run(stop);
    if (!peers) return Error(StatusCode::kCancelled, "stopped while asking the peers");
    const double waited = std::chrono::duration<double>(Clock::now() - start).count();
    const bool wait_over = Clock::now() - start >= options.recover_wait;
    const bool override_asked = InitializeEmptyOverrideAsked(override_path);
    RecoveryDecision decision =
        DecidePrimaryRecovery(*peers, settings.flavour, wait_over, override_asked);
    view.plan = std::string(RecoveryPlanName(decision.plan));
    view.reason = decision.reason;
    view.detail = decision.detail;
    view.rounds = round;
    view.waited_seconds = waited;
    view.waiting_for = decision.waiting_for;
    view.donor.clear();
    std::optional<clone::Endpoint> endpoint;
    if (decision.donor) {
      endpoint = (*survey)->EndpointOf((*peers)[*decision.donor]);
      view.donor = (*peers)[*decision.donor].name +
                   (endpoint ? " (" + discovery::EndpointText(*endpoint) + ")" : "");
    }
    if (on_decision) on_decision(view);
    // Logged when it changes, and every kLogEvery rounds while it waits: a person watching
    // the log sees why nothing starts without a line every two seconds.
    const std::string words = fmt::format("{} {} {}", view.plan, decision.detail, PeersLine(*peers));
    if (words != last_logged || round % kLogEvery == 1 || decision.plan != RecoveryPlan::kWait) {
      last_logged = words;
      std::string waiting;
      for (const auto& w : decision.waiting_for)
        waiting += fmt::format("{}{}:{}", waiting.empty() ? "" : " ", w.name, w.why);
      Log()->log(decision.plan == RecoveryPlan::kWait ? spdlog::level::warn
                 : decision.plan == RecoveryPlan::kConflict ? spdlog::level::err
                                                            : spdlog::level::info,
                 "event=primary_recovery_decision plan={} reason={} round={} waited_s={:.1f} "
                 "recover_wait_s={} donor={} waiting_for={} peers={} detail={}",
                 RecoveryPlanName(decision.plan), decision.reason, round, waited,
                 options.recover_wait.count() / 1000, view.donor.empty() ? "-" : view.donor,
                 log::Quote(waiting.empty() ? "-" : waiting), log::Quote(PeersLine(*peers)),
                 log::Quote(decision.detail));
    }
    if (decision.plan == RecoveryPlan::kInitialize && decision.reason != "operator_override" &&
        options.restore_from_store) {
      auto restored = options.restore_from_store(stop);
      if (restored && *restored) {
        view.plan = "restore";
        view.reason = "restored_from_store";
        view.detail = **restored;
        if (on_decision) on_decision(view);
        Log()->info("event=primary_recovered source=store detail={}", log::Quote(**restored));
        return true;
      }
      if (!restored) {
        if (restored.error().code() == StatusCode::kCancelled) return Error(restored.error());
        // Fails closed either way (never an empty writable primary beside a store holding
        // data); the reason says whether waiting can mend it or a person must.
        const bool refused = restored.error().code() == StatusCode::kInvalidArgument;
        view.plan = "wait";
        view.reason = refused ? "restore_refused" : "store_unanswered";
        view.detail = restored.error().message();
        if (on_decision) on_decision(view);
        const auto retry_in = StoreRetryDelay(options, ++store_failures);
        Log()->log(refused ? spdlog::level::err : spdlog::level::warn,
                   "event=primary_recovery_decision plan=wait reason={} round={} failures={} "
                   "retry_in_s={:.1f} detail={}",
                   view.reason, round, store_failures, static_cast<double>(retry_in.count()) / 1000,
                   log::Quote(restored.error().message()));
        if (!SleepFor(retry_in, stop))
          return Error(StatusCode::kCancelled, "stopped while asking the store");
        continue;
      }
      Log()->info("event=primary_recovery_store_empty action=initialize");
    }
    if (decision.plan == RecoveryPlan::kInitialize) {
      if (decision.reason == "operator_override") {
        // Consumed before anything is created: a crash after this point finds the
        // root-password marker or a datadir, never the override again.
        REPLBOOT_RETURN_IF_ERROR(ConsumeInitializeEmptyOverride(override_path));
        Log()->warn("event=primary_recovery_override file={} action=initialize_empty "
                    "peers_data=discarded",
                    log::Quote(override_path));
      }
      return false;
    }
    if (decision.plan == RecoveryPlan::kClone && endpoint) {
      const PeerFacts donor = (*peers)[*decision.donor];
      clone::CloneOptions clone_options = (*survey)->clone_options();
      clone_options.stop = stop;
      clone_options.on_progress = on_progress;
      // The survey's answer came from this ordinal: the clone and the probe before the commit
      // take the datadir from no other node.
      clone_options.expected_ordinal = donor.ordinal;
      const clone::Endpoint donor_endpoint = *endpoint;
      clone_options.before_commit = [&settings, &clone_options, donor, donor_endpoint](
                                        const std::string& staging,
                                        const clone::StreamHeader& header) -> Status {
        // The donor has no source while the primary is gone, so its state stands still; if it
        // moved (someone wrote on it), the clone may not hold what the state says: again.
        auto again = clone::ProbePeer(donor_endpoint, clone_options, kProbeTimeout);
        if (!again) return again.error().WithContext("asking the donor again before the commit");
        if (again->gtid_binlog_state != donor.answer->gtid_binlog_state ||
            again->gtid_current_pos != donor.answer->gtid_current_pos) {
          return Status(
              StatusCode::kUnavailable,
              fmt::format("{}'s GTID state moved during the clone ({} → {}, position {} → "
                          "{})",
                          donor.name, log::Printable(donor.answer->gtid_binlog_state),
                          log::Printable(again->gtid_binlog_state), log::Printable(donor.answer->gtid_current_pos),
                          log::Printable(again->gtid_current_pos)));
        }
        // What the donor executed, not only what it logged: the new primary's binlog must
        // hold every position a replica may ask for.
        auto executed = ExecutedGtids(*donor.answer, settings.flavour);
        if (!executed) return executed.error().WithContext(donor.name + "'s GTID state");
        return WritePromotionMarker(staging, donor.name, executed->ToString(), header.cluster_id,
                                    settings.mysql_user, {{"donor_ordinal", donor.ordinal}});
      };
      clone::RetryPolicy policy;
      policy.max_rounds = 2;  // then survey again: the donor may be gone, another ahead
      policy.first_backoff = milliseconds(1000);
      auto cloned = clone::CloneFromPeers(
          [&] {
            return std::vector<clone::DonorEndpoint>{{donor_endpoint, donor.ordinal}};
          },
          clone_options, policy);
      if (cloned) {
        Log()->info("event=primary_recovered donor={} cluster_id={} gtid_state={}", donor.name,
                    cloned->header.cluster_id.empty() ? "-" : cloned->header.cluster_id,
                    log::Quote(donor.answer->gtid_binlog_state));
        return true;
      }
      if (cloned.error().code() == StatusCode::kCancelled) return Error(cloned.error());
      if (cloned.error().code() == StatusCode::kNoSpace) return Error(cloned.error());
      Log()->warn("event=primary_recovery_clone_failed donor={} error={}", donor.name,
                  log::Quote(cloned.error().message()));
    }
    if (!SleepFor(options.round_interval, stop))
      return Error(StatusCode::kCancelled, "stopped while asking the peers");
  }
}

std::vector<std::string> PromotionStatements(const db::Dialect& dialect,
                                             const std::string& gtid_state) {
  // mysqld reads the init file with the server's sql_mode: quoting needs backslash escapes.
  std::vector<std::string> sql = {std::string(db::kBackslashEscapesSql), dialect.ResetReplicaAll()};
  if (!gtid_state.empty()) {
    for (auto& s : dialect.ContinueGtidHistory(gtid_state)) sql.push_back(std::move(s));
  }
  return sql;
}

namespace {

// The donor's GTID state from the marker, checked again before it reaches SQL.
Result<std::string> MarkerGtidState(const std::string& datadir, Flavour flavour) {
  const std::string path = JoinPath(datadir, kPromotionMarker);
  auto text = files::ReadFile(path);
  if (!text) return Error(text.error().WithContext("promotion marker"));
  std::string gtid_state;
  try {
    auto j = nlohmann::json::parse(*text);
    j.at("gtid_state").get_to(gtid_state);
  } catch (const nlohmann::json::exception& e) {
    return Error(StatusCode::kCorruption, "{}: {}", path, e.what());
  }
  auto set = replication::GtidSet::Parse(gtid_state, flavour);
  if (!set) return Error(set.error().WithContext(path));
  // The normalised text: the init file is read line by line, and the parser lets whitespace
  // (newlines included) through.
  return set->ToString();
}

// "mysqld  Ver 8.0.36 for Linux on x86_64" → 80036; 0 when unknown (the newest syntax).
int ServerBinaryVersion(const std::string& binary) {
  auto run = process::RunCapture({binary, "--version"}, process::ChildEnvironment());
  if (!run) return 0;
  const std::string text = run->out;
  const size_t ver = text.find("Ver ");
  if (ver == std::string::npos) return 0;
  std::string rest = text.substr(ver + 4);
  return db::ParseServerVersion(rest.substr(0, rest.find_first_of(" \n"))).value_or(0);
}

}  // namespace

namespace {

// The new history a point-in-time restore put into the marker; nullopt when none.
Result<std::optional<archive::HistoryRecord>> MarkerHistory(const std::string& datadir) {
  const std::string path = JoinPath(datadir, kPromotionMarker);
  auto text = files::ReadFile(path);
  if (!text) return Error(text.error().WithContext("promotion marker"));
  archive::HistoryRecord r;
  try {
    auto j = nlohmann::json::parse(*text);
    if (!j.contains("history")) return std::optional<archive::HistoryRecord>();
    const auto& h = j.at("history");
    h.at("id").get_to(r.id);
    h.at("cluster_id").get_to(r.cluster_id);
    h.at("parent").get_to(r.parent);
    h.at("branch_state").get_to(r.branch_state);
    h.at("backup_id").get_to(r.backup_id);
    h.at("target").get_to(r.target);
    h.at("created_at_ms").get_to(r.created_at_ms);
  } catch (const nlohmann::json::exception& e) {
    return Error(StatusCode::kCorruption, "{}: {}", path, e.what());
  }
  // The statements quote these as they are: each must be of its form.
  if (!archive::IsHistoryId(r.id) || !archive::IsHistoryId(r.parent) ||
      !binlog::GtidState::Parse(r.branch_state) || r.target.find_first_of("'\\") != std::string::npos ||
      r.backup_id.find_first_of("'\\") != std::string::npos) {
    return Error(StatusCode::kCorruption, "{}: its history is not of the form a restore writes",
                 path);
  }
  return std::optional<archive::HistoryRecord>(std::move(r));
}

}  // namespace

Result<std::optional<std::string>> PromotionInitSql(const NodeSettings& settings) {
  const std::string& datadir = settings.config.mysql.datadir;
  if (!PromotionPending(datadir)) return std::optional<std::string>();
  auto gtid_state = MarkerGtidState(datadir, settings.flavour);
  if (!gtid_state) return Error(gtid_state.error());
  // MySQL renamed RESET MASTER in 8.4: the binary says which it is (MariaDB: one spelling).
  const int version =
      settings.flavour == Flavour::kMySQL ? ServerBinaryVersion(settings.server_binary) : 0;
  std::string sql;
  // One statement per line: mysqld reads an init file line by line.
  for (const auto& statement :
       PromotionStatements(db::Dialect(settings.flavour, version), *gtid_state)) {
    sql += statement + ";\n";
  }
  Log()->info("event=promotion_prepared gtid_binlog_state={} statements={}",
              log::Quote(*gtid_state), log::Quote(sql));
  return std::optional<std::string>(std::move(sql));
}

Status FinishPromotion(const NodeSettings& settings) {
  const std::string& datadir = settings.config.mysql.datadir;
  if (!PromotionPending(datadir)) return Status::Ok();
  auto gtid_state = MarkerGtidState(datadir, settings.flavour);
  if (!gtid_state) return gtid_state.error();
  auto session = db::Connect(LocalRootOptions(settings));
  if (!session) return session.error().WithContext("promotion");
  auto dialect = db::ReadDialect(**session, settings.flavour);
  if (!dialect) return dialect.error().WithContext("promotion");
  // The init file ran before the first client: the binlog must start from the donor's state.
  auto rows = (*session)->Query(dialect->GtidStateQuery());
  if (!rows) return rows.error().WithContext("promotion");
  const std::string now = rows->empty() ? "" : (*rows)[0].Get("binlog_state").value_or("");
  auto want = replication::GtidSet::Parse(*gtid_state, settings.flavour);
  auto have = replication::GtidSet::Parse(now, settings.flavour);
  if (!want || !have || !have->Contains(*want)) {
    return Status(StatusCode::kInternal,
                  fmt::format("after the init file the binlog state is {}, not the donor's {}",
                              log::Printable(now), log::Printable(*gtid_state)));
  }
  // A point-in-time restore's new history (pitr_restore.h): its row is the history's first
  // transaction, logged before anything else can write. A kill before the marker goes runs the
  // init file again (the row stays, its GTID is reset away) and writes it again here.
  if (auto history = MarkerHistory(datadir); !history) {
    return history.error();
  } else if (*history) {
    for (const auto& statement : archive::HistoryTableStatements(**history)) {
      if (Status s = (*session)->Execute(statement); !s.ok())
        return s.WithContext("promotion: recording history " + (*history)->id);
    }
    Log()->info("event=history_recorded history={} parent={} branch_state={}", (*history)->id,
                (*history)->parent, log::Quote((*history)->branch_state));
  }
  REPLBOOT_RETURN_STATUS_IF_ERROR(files::RemoveAll(JoinPath(datadir, kPromotionMarker)));
  REPLBOOT_RETURN_STATUS_IF_ERROR(files::FsyncDir(datadir));
  // Only now writable: a kill before the marker went would run the init file again, which is
  // harmless only while nothing but that state is in the binlog.
  if (Status s = (*session)->Execute("SET GLOBAL read_only = OFF"); !s.ok())
    return s.WithContext("promotion: read_only off");
  Log()->info("event=primary_promoted gtid_binlog_state={} read_only=off", log::Quote(now));
  return Status::Ok();
}

}  // namespace replboot::daemon
