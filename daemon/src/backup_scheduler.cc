#include "replboot/daemon/backup_scheduler.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>

#include "replboot/archive/catalog.h"
#include "replboot/archive/layout.h"
#include "replboot/base/log.h"
#include "replboot/clone/prober.h"
#include "replboot/clone/cluster_id.h"
#include "replboot/daemon/backups.h"
#include "replboot/daemon/restore_test.h"
#include "replboot/discovery/ares_resolver.h"
#include "replboot/discovery/peers.h"
#include "replboot/replication/health.h"

namespace replboot::daemon {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::system_clock;

namespace {

auto Log() { return log::Get("archive"); }

int64_t ToMs(system_clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}
int64_t ToS(system_clock::time_point t) {
  return std::chrono::duration_cast<seconds>(t.time_since_epoch()).count();
}

std::string Ordinal(int64_t n) {
  const char* suffix = (n % 100 >= 11 && n % 100 <= 13) ? "th"
                       : n % 10 == 1                    ? "st"
                       : n % 10 == 2                    ? "nd"
                       : n % 10 == 3                    ? "rd"
                                                        : "th";
  return fmt::format("{}{}", n, suffix);
}

}  // namespace

// --- pure rules ------------------------------------------------------------------------

Turn DecideTurn(const TurnInput& in) {
  Turn turn;
  std::vector<int64_t> replicas;
  for (int64_t r : in.replicas) {
    if (r > 0) replicas.push_back(r);
  }
  if (!in.primary && in.ordinal > 0) replicas.push_back(in.ordinal);
  std::sort(replicas.begin(), replicas.end());
  replicas.erase(std::unique(replicas.begin(), replicas.end()), replicas.end());
  const int64_t n = static_cast<int64_t>(replicas.size());
  if (n > 0) {
    // A non-negative index whatever the slot's sign (slots before 1970 do not occur, but the
    // rule stays defined).
    const int64_t holder_at = ((in.slot_index % n) + n) % n;
    turn.holder = replicas[static_cast<size_t>(holder_at)];
  }
  if (!in.ready) {
    turn.reason = "this node is not ready";
    return turn;
  }
  if (in.primary) {
    if (n == 0) {
      turn.may_try = true;
      turn.reason = "no replica in DNS: the primary takes it";
      return turn;
    }
    turn.after = in.step * n;
    std::vector<int64_t> ready;
    for (int64_t r : in.ready_replicas) {
      if (std::find(replicas.begin(), replicas.end(), r) != replicas.end()) ready.push_back(r);
    }
    if (!ready.empty()) {
      turn.reason = fmt::format(
          "turn holder ordinal {}; the primary only when no replica is ready ({} ready)",
          turn.holder, ready.size());
      return turn;
    }
    turn.may_try = true;
    turn.reason = fmt::format(
        "turn holder ordinal {}; no replica ready: the primary, after every replica's turn "
        "(+{}s)",
        turn.holder, turn.after.count());
    return turn;
  }
  const auto me = std::find(replicas.begin(), replicas.end(), in.ordinal);
  const int64_t my_index = me - replicas.begin();
  const int64_t holder_at = ((in.slot_index % n) + n) % n;
  const int64_t position = ((my_index - holder_at) % n + n) % n;
  turn.may_try = true;
  turn.after = in.step * position;
  turn.reason =
      position == 0
          ? fmt::format("turn holder: this node (ordinal {}), of {} replicas", in.ordinal, n)
          : fmt::format("turn holder ordinal {}; this node {} in line, from +{}s", turn.holder,
                        Ordinal(position + 1), turn.after.count());
  return turn;
}

SlotDecision DecideSlot(const std::vector<AttemptState>& attempts, std::string_view node,
                        int64_t now_ms, std::chrono::seconds claim_timeout, int max_attempts) {
  SlotDecision d;
  const AttemptState* last_claim = nullptr;
  for (const AttemptState& a : attempts) {
    if (a.has_manifest) {
      d.action = SlotDecision::Action::kDone;
      d.attempt = a.attempt;
      d.node = a.node;
      d.reason = fmt::format("backup {} is in the store", a.id);
      return d;
    }
    if (a.claimed && (last_claim == nullptr || a.attempt > last_claim->attempt)) last_claim = &a;
  }
  if (last_claim == nullptr) {
    d.action = SlotDecision::Action::kTake;
    d.attempt = 0;
    d.reason = "not claimed yet";
    return d;
  }
  const int64_t age_ms = now_ms - last_claim->claimed_at_ms;
  const bool mine = last_claim->node == node;
  if (!mine && age_ms < claim_timeout.count() * 1000) {
    d.action = SlotDecision::Action::kBusy;
    d.attempt = last_claim->attempt;
    d.node = last_claim->node;
    d.reason = fmt::format("{} claimed {} {}s ago", last_claim->node, last_claim->id,
                           std::max<int64_t>(0, age_ms / 1000));
    return d;
  }
  const int next = last_claim->attempt + 1;
  if (next >= max_attempts) {
    d.action = SlotDecision::Action::kExhausted;
    d.attempt = last_claim->attempt;
    d.node = last_claim->node;
    d.reason = fmt::format("all {} attempt ids of the slot were used", max_attempts);
    return d;
  }
  d.action = SlotDecision::Action::kTake;
  d.attempt = next;
  d.reason = mine ? fmt::format("this node's attempt {} failed", last_claim->id)
                  : fmt::format(
                        "{}'s claim of {} is {}s old, past archive.claim_timeout "
                        "without a manifest",
                        last_claim->node, last_claim->id, age_ms / 1000);
  return d;
}

std::string_view BackupFailureKind(const Status& failure,
                                   const std::optional<Status>& store_error) {
  if (store_error) {
    switch (store_error->code()) {
      case StatusCode::kPermissionDenied:
        return "store_denied";
      case StatusCode::kNoSpace:
        return "store_full";
      case StatusCode::kUnavailable:
      case StatusCode::kTimeout:
        return "store_unreachable";
      case StatusCode::kCorruption:
        return "verify";
      default:
        return "other";
    }
  }
  if (failure.code() == StatusCode::kNoSpace) return "store_full";
  if (failure.code() == StatusCode::kCorruption &&
      (failure.message().find("read back") != std::string::npos ||
       failure.message().find("after its upload") != std::string::npos)) {
    return "verify";
  }
  if (failure.code() == StatusCode::kInternal) return "other";
  return "source";
}

// --- the service ---------------------------------------------------------------------

namespace {

// The store as the scheduler uses it, remembering the first failure of a store call since
// the last Reset(): what a failed attempt is counted under. kNotFound is an answer, not a
// failure (a claim not there yet). Thread-safe (the writer uploads from its worker).
class RecordingStore final : public store::ObjectStore {
 public:
  explicit RecordingStore(std::unique_ptr<store::ObjectStore> inner) : inner_(std::move(inner)) {}
  std::string Describe() const override { return inner_->Describe(); }
  Status Put(const std::string& key, std::span<const uint8_t> body) override {
    return Note(inner_->Put(key, body));
  }
  Result<bool> PutIfAbsent(const std::string& key, std::span<const uint8_t> body) override {
    auto r = inner_->PutIfAbsent(key, body);
    if (!r) Remember(r.error());
    return r;
  }
  Result<std::vector<uint8_t>> Get(const std::string& key, uint64_t max_bytes) override {
    auto r = inner_->Get(key, max_bytes);
    if (!r) Remember(r.error());
    return r;
  }
  Result<std::vector<store::ObjectInfo>> List(const std::string& prefix) override {
    auto r = inner_->List(prefix);
    if (!r) Remember(r.error());
    return r;
  }
  Status Delete(const std::string& key) override { return Note(inner_->Delete(key)); }

  void Reset() {
    std::lock_guard lock(mu_);
    first_.reset();
  }
  std::optional<Status> FirstFailure() const {
    std::lock_guard lock(mu_);
    return first_;
  }

 private:
  Status Note(Status s) {
    Remember(s);
    return s;
  }
  void Remember(const Status& s) {
    if (!s.ok() && s.code() != StatusCode::kNotFound) {
      std::lock_guard lock(mu_);
      if (!first_) first_ = s;
    }
  }
  std::unique_ptr<store::ObjectStore> inner_;
  mutable std::mutex mu_;
  std::optional<Status> first_;
};

// A probe is a TCP connect, the HMAC handshake and one query on the peer.
constexpr milliseconds kProbeTimeout{3000};
// How far past the highest replica ordinal in DNS the survey looks (as the lost primary's).
constexpr int64_t kScanGap = 3;
constexpr int64_t kMaxOrdinal = 128;

struct PeerSurvey {
  std::vector<int64_t> replicas;  // in DNS
  std::vector<int64_t> ready;     // answered ready (and not diverged)
};

}  // namespace

struct BackupScheduler::Impl {
  NodeSettings settings;
  api::Server& server;
  clone::Endpoint from;
  archive::Schedule schedule;
  std::string node;
  seconds step{30};
  seconds claim_timeout{3600};
  seconds retry_backoff{30};
  seconds restore_test_interval{0};  // 0 = no scheduled restore tests
  milliseconds poll{2000};
  double max_lag = 30;
  RecordingStore* store = nullptr;  // owned by archive
  std::unique_ptr<Archive> archive;
  // The survey of the replicas: DNS names and authenticated probes, as discovery does.
  asio::io_context io;
  std::unique_ptr<discovery::AresResolver> resolver;
  std::unique_ptr<clone::AuthenticatedProber> prober;
  discovery::DiscoverOptions discover;
  uint64_t expected_bytes = 0;  // the previous backup's logical size
  // Ends the store's retries and backoff waits too (the store was opened with its token).
  std::stop_source stop_source;

  Impl(NodeSettings s, api::Server& srv) : settings(std::move(s)), server(srv) {}
  ~Impl() {
    prober.reset();
    resolver.reset();
  }

  template <typename F>
  void Publish(F&& change) {
    server.archive_status().Update(std::forward<F>(change));
  }

  // Sleeps until `until` (system clock: slots are wall-clock times), woken by a stop.
  bool SleepUntil(system_clock::time_point until, std::stop_token stop) {
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lock(mu);
    cv.wait_until(lock, stop, until, [] { return false; });
    return !stop.stop_requested();
  }

  bool Ready() const {
    const replication::Snapshot s = server.Current();
    return replication::DecideReady(s, max_lag).ok && !s.recovery.diverged;
  }

  PeerSurvey Survey(std::stop_token stop) {
    PeerSurvey out;
    prober->Forget();
    int64_t next = 1, limit = kScanGap;
    const int64_t self = settings.identity.ordinal;
    while (next <= limit && !stop.stop_requested()) {
      discovery::DiscoverOptions batch = discover;
      batch.candidates.clear();
      for (int64_t k = next; k <= limit; ++k) {
        if (k == self) continue;
        batch.candidates.push_back({k, fmt::format("{}-{}.{}", settings.identity.prefix, k,
                                                   settings.config.cluster.service)});
      }
      int64_t highest = self;
      if (!batch.candidates.empty()) {
        auto found = discovery::RunDiscovery(io, *resolver, *prober, batch, stop);
        if (!found || found->cancelled) return out;
        for (const auto& report : found->peers) {
          const bool absent = report.state == discovery::PeerState::kDnsFailed &&
                              report.dns_failure &&
                              (report.dns_failure->error == discovery::LookupError::kNxDomain ||
                               report.dns_failure->error == discovery::LookupError::kNoData);
          if (absent) continue;
          out.replicas.push_back(report.candidate.ordinal);
          highest = std::max(highest, report.candidate.ordinal);
          for (const auto& address : report.addresses) {
            if (auto answer = prober->Answer(clone::Endpoint(address, report.port))) {
              if (answer->ready && !answer->diverged) out.ready.push_back(report.candidate.ordinal);
              break;
            }
          }
        }
      }
      next = limit + 1;
      limit = std::min(kMaxOrdinal, std::max(limit, highest + kScanGap));
    }
    return out;
  }

  // The slot's attempts in the store: claims in order up to the first absent one, each with
  // whether its manifest is there.
  Result<std::vector<AttemptState>> ReadAttempts(system_clock::time_point slot) {
    std::vector<AttemptState> out;
    const int max = archive::MaxSlotAttempts(schedule);
    for (int a = 0; a < max; ++a) {
      AttemptState st;
      st.attempt = a;
      st.id = archive::SlotAttemptId(slot, a);
      auto claim = archive->store->Get(archive::ClaimKey(st.id), 64 << 10);
      if (!claim && claim.error().code() != StatusCode::kNotFound) return Error(claim.error());
      if (claim) {
        st.claimed = true;
        auto j = nlohmann::json::parse(claim->begin(), claim->end(), nullptr, false);
        if (j.is_object()) {
          st.node = j.value("node", std::string());
          st.claimed_at_ms = j.value("claimed_at_ms", int64_t{0});
        }
      }
      // A manifest can exist only under a claim; an unclaimed id ends the list (looked at
      // once: `backup now --id` of a slot's id claims too).
      auto listed = archive->store->List(archive::ManifestKey(st.id));
      if (!listed) return Error(listed.error());
      st.has_manifest = !listed->empty();
      out.push_back(st);
      if (!st.claimed) break;
    }
    return out;
  }

  // The store's newest complete backup and restore test, for the metrics and the next ETA.
  void RefreshFromStore() {
    auto entries = archive::ListBackups(*archive->store, archive->key);
    if (!entries) {
      Log()->warn("event=scheduled_backup_list_failed error={}",
                  log::Quote(entries.error().message()));
      return;
    }
    const archive::Manifest* newest = nullptr;
    int64_t restore_test_ms = 0;
    for (const auto& e : *entries) {
      if (!e.complete || !e.manifest) continue;
      if (newest == nullptr || e.manifest->finished_at_ms > newest->finished_at_ms)
        newest = &*e.manifest;
      if (e.checks && e.checks->restore_test_error.empty())
        restore_test_ms = std::max(restore_test_ms, e.checks->restore_tested_at_ms);
    }
    if (newest != nullptr) expected_bytes = newest->logical_bytes;
    Publish([&](replication::ArchiveStatusView& v) {
      if (newest != nullptr) {
        v.last_success_at = newest->finished_at_ms / 1000;
        v.last_success_id = newest->backup_id;
        v.last_success_node = newest->node;
      }
      v.last_restore_test_at = std::max(v.last_restore_test_at, restore_test_ms / 1000);
      v.expected_bytes = expected_bytes;
    });
  }

  void SetState(const std::string& state, const std::string& slot_id, const std::string& turn) {
    Publish([&](replication::ArchiveStatusView& v) {
      v.state = state;
      v.slot_id = slot_id;
      v.turn = turn;
    });
  }

  void Finished(const std::string& result, const std::string& id, const std::string& error,
                const std::string& kind) {
    Publish([&](replication::ArchiveStatusView& v) {
      v.last_result = result;
      v.last_id = id;
      v.last_error = error;
      v.last_failure_kind = kind;
    });
  }

  // One attempt under `id`, claimed by this node. Ok, or the failure (counted).
  Status Attempt(system_clock::time_point slot, int attempt, const std::string& id,
                 std::stop_token stop) {
    TakeBackupOptions options;
    options.backup_id = id;
    options.from = from;
    options.from_ordinal = settings.identity.ordinal;
    options.stop = stop;
    options.claimed = true;
    options.expected_bytes = expected_bytes;
    const uint64_t expected = expected_bytes;
    options.on_progress = [this, expected](uint64_t logical, uint64_t, double rate) {
      Publish([&](replication::ArchiveStatusView& v) {
        v.progress_bytes = logical;
        v.progress_bytes_per_second = rate;
        if (expected > 0 && rate > 0) {
          v.eta_seconds = static_cast<double>(expected > logical ? expected - logical : 0) / rate;
        } else {
          v.eta_seconds.reset();
        }
      });
    };
    // A later attempt of this slot claimed meanwhile means another node took this one for
    // dead (archive.claim_timeout): it backs the slot up, this node gives up.
    options.before_manifest = [this, slot, attempt]() -> Status {
      const int max = archive::MaxSlotAttempts(schedule);
      for (int a = attempt + 1; a < max; ++a) {
        const std::string later = archive::SlotAttemptId(slot, a);
        auto claim = archive->store->Get(archive::ClaimKey(later), 64 << 10);
        if (!claim) {
          if (claim.error().code() == StatusCode::kNotFound) return Status::Ok();
          return claim.error();
        }
        return Status(StatusCode::kCancelled,
                      fmt::format("the slot was taken over under {} meanwhile", later));
      }
      return Status::Ok();
    };
    Publish([&](replication::ArchiveStatusView& v) {
      v.in_progress = true;
      v.current_id = id;
      v.progress_bytes = 0;
      v.progress_bytes_per_second = 0;
      v.eta_seconds.reset();
      v.expected_bytes = expected;
    });
    store->Reset();
    auto manifest = TakeBackup(settings, *archive, options);
    Publish([&](replication::ArchiveStatusView& v) {
      v.in_progress = false;
      v.progress_bytes_per_second = 0;
      v.eta_seconds.reset();
    });
    if (!manifest) return manifest.error();
    Publish([&](replication::ArchiveStatusView& v) { ++v.taken; });
    return Status::Ok();
  }

  // Handles one slot until it is backed up (by anyone), given up, or its window (until
  // `end`, the next slot) has passed.
  void HandleSlot(system_clock::time_point slot, system_clock::time_point end,
                  std::stop_token stop) {
    const std::string slot_id = archive::SlotBackupId(slot);
    const int64_t index = archive::SlotIndex(schedule, slot);
    const int max_attempts = archive::MaxSlotAttempts(schedule);
    seconds backoff = retry_backoff;
    system_clock::time_point not_before = slot;
    std::string last_logged;
    auto note = [&](const std::string& event, const std::string& line) {
      if (line == last_logged) return;
      last_logged = line;
      Log()->info("event={} slot={} {}", event, slot_id, line);
    };
    while (!stop.stop_requested()) {
      const auto now = system_clock::now();
      if (now >= end) {
        Log()->warn("event=scheduled_backup_missed slot={} reason={}", slot_id,
                    log::Quote("the slot's window passed without a backup"));
        Finished("missed", slot_id, "the slot's window passed without a backup", "");
        return;
      }
      store->Reset();
      auto attempts = ReadAttempts(slot);
      if (!attempts) {
        note("scheduled_backup_store_unanswered",
             fmt::format("error={}", log::Quote(attempts.error().message())));
        SetState("waiting_turn", slot_id,
                 "the store does not answer: " + attempts.error().message());
        // On this node's turn a store that cannot even be read is this slot's failure: it is
        // counted (and alerted on) like a failed upload, and retried with the same backoff.
        if (now >= not_before) {
          const Turn turn = CurrentTurn(index, stop);
          if (turn.may_try && now >= slot + turn.after) {
            Failed(slot_id, slot_id, attempts.error(), store->FirstFailure(), backoff, not_before);
            continue;
          }
        }
        SleepUntil(std::min(end, now + poll), stop);
        continue;
      }
      const SlotDecision d = DecideSlot(*attempts, node, ToMs(now), claim_timeout, max_attempts);
      if (d.action == SlotDecision::Action::kDone) {
        const bool mine = d.node == node;
        Log()->info("event=scheduled_backup_slot_done slot={} id={} taker={}", slot_id,
                    archive::SlotAttemptId(slot, d.attempt), d.node.empty() ? "-" : d.node);
        if (!mine) Finished("taken_by_other", archive::SlotAttemptId(slot, d.attempt), "", "");
        return;
      }
      if (d.action == SlotDecision::Action::kExhausted) {
        Log()->warn("event=scheduled_backup_given_up slot={} reason={}", slot_id,
                    log::Quote(d.reason));
        Finished("failed", slot_id, d.reason, "");
        return;
      }
      if (d.action == SlotDecision::Action::kBusy) {
        note("scheduled_backup_slot_busy", fmt::format("reason={}", log::Quote(d.reason)));
        SetState("waiting_turn", slot_id, d.reason);
        SleepUntil(std::min(end, now + poll), stop);
        continue;
      }
      if (now < not_before) {
        SetState("retry_wait", slot_id,
                 fmt::format("retrying in {}s",
                             std::chrono::duration_cast<seconds>(not_before - now).count()));
        SleepUntil(std::min(end, not_before), stop);
        continue;
      }
      const Turn turn = CurrentTurn(index, stop);
      const std::string words = fmt::format("slot {}: {}", slot_id, turn.reason);
      if (!turn.may_try || now < slot + turn.after) {
        note("scheduled_backup_turn", fmt::format("turn={}", log::Quote(turn.reason)));
        SetState("waiting_turn", slot_id, words);
        const auto wake = turn.may_try ? std::min(slot + turn.after, now + poll) : now + poll;
        SleepUntil(std::min(end, wake), stop);
        continue;
      }
      const std::string id = archive::SlotAttemptId(slot, d.attempt);
      store->Reset();
      auto won = archive::ClaimBackup(*archive->store, id, node, ToMs(system_clock::now()));
      if (won && !*won) continue;  // another node was quicker: look again
      SetState("taking", slot_id, words);
      Log()->info("event=scheduled_backup_start slot={} id={} attempt={} turn={} why={}", slot_id,
                  id, d.attempt, log::Quote(turn.reason), log::Quote(d.reason));
      Status result = won ? Attempt(slot, d.attempt, id, stop) : won.error();
      if (result.ok()) {
        Log()->info("event=scheduled_backup_done slot={} id={}", slot_id, id);
        Finished("ok", id, "", "");
        auto pruned = PruneBackups(settings, *archive, /*dry_run=*/false);
        if (!pruned) {
          Log()->warn("event=scheduled_backup_prune_failed error={}",
                      log::Quote(pruned.error().message()));
        }
        MaybeRestoreTest(stop);
        return;
      }
      if (stop.stop_requested()) return;
      Failed(slot_id, id, result, store->FirstFailure(), backoff, not_before);
    }
  }

  // The node that just took a backup (a replica, by the turn rule) proves one restorable when
  // none was within restore_test_interval (PickBackupDueForRestoreTest). A failed test is a
  // failure of kind "restore_test"; one that could not run (too little room for the scratch
  // dir, the store unanswered) is logged and tried after the next backup.
  void MaybeRestoreTest(std::stop_token stop) {
    if (restore_test_interval.count() == 0 || stop.stop_requested()) return;
    auto cluster = clone::ReadClusterId(settings.config.mysql.datadir);
    const std::string cluster_id = cluster && *cluster ? **cluster : "";
    auto due = BackupDueForRestoreTest(*archive, cluster_id, restore_test_interval);
    if (!due) {
      Log()->warn("event=scheduled_restore_test_skipped error={}",
                  log::Quote(due.error().message()));
      return;
    }
    if (!*due) return;
    auto manifest = archive::LoadManifest(*archive->store, archive->key, **due);
    if (!manifest) {
      Log()->warn("event=scheduled_restore_test_skipped backup={} error={}", **due,
                  log::Quote(manifest.error().message()));
      return;
    }
    SetState("restore_testing", **due, "");
    Log()->info("event=scheduled_restore_test_start backup={}", **due);
    RestoreTestOptions options;
    options.stop = stop;
    auto report = RestoreTestBackup(settings, *archive, *manifest, options);
    SetState("waiting_slot", "", "");
    if (!report) {
      Log()->warn("event=scheduled_restore_test_not_run backup={} error={}", **due,
                  log::Quote(report.error().message()));
      return;
    }
    if (report->ok) {
      Log()->info("event=scheduled_restore_test_passed backup={} tables={} seconds={:.1f} gtid={}",
                  **due, report->tables, report->seconds, report->gtid_check);
      Publish([&](replication::ArchiveStatusView& v) {
        v.last_restore_test_at = std::max(v.last_restore_test_at, report->tested_at_ms / 1000);
      });
    } else {
      Log()->error("event=scheduled_restore_test_failed backup={} error={}", **due,
                   log::Quote(report->error));
      Publish([&](replication::ArchiveStatusView& v) { ++v.failures["restore_test"]; });
    }
  }

  Turn CurrentTurn(int64_t index, std::stop_token stop) {
    TurnInput in;
    in.slot_index = index;
    in.ordinal = settings.identity.ordinal;
    in.primary = settings.identity.role == conf::Role::kPrimary;
    in.ready = Ready();
    in.step = step;
    PeerSurvey peers = Survey(stop);
    in.replicas = peers.replicas;
    in.ready_replicas = peers.ready;
    return DecideTurn(in);
  }

  // Counts a failed attempt and sets when the next may start (backoff doubling, at most
  // 10 minutes or retry_backoff when that is longer).
  void Failed(const std::string& slot_id, const std::string& id, const Status& result,
              const std::optional<Status>& store_error, seconds& backoff,
              system_clock::time_point& not_before) {
    const std::string kind(BackupFailureKind(result, store_error));
    Publish([&](replication::ArchiveStatusView& v) { ++v.failures[kind]; });
    not_before = system_clock::now() + backoff;
    Log()->warn("event=scheduled_backup_failed slot={} id={} kind={} retry_in_s={} error={}",
                slot_id, id, kind, backoff.count(), log::Quote(result.message()));
    Finished("failed", id, result.message(), kind);
    backoff = std::min(backoff * 2, std::max(retry_backoff, seconds(600)));
  }

  void Run(std::stop_token stop) {
    RefreshFromStore();
    // Slots after the start only: a node (re)starting in the middle of the day does not take
    // the morning's slot late; the others took it, or the next one is taken.
    auto next = archive::NextSlot(schedule, system_clock::now());
    while (next && !stop.stop_requested()) {
      Publish([&](replication::ArchiveStatusView& v) {
        v.state = "waiting_slot";
        v.next_slot_at = ToS(*next);
        v.next_backup_id = archive::SlotBackupId(*next);
      });
      if (!SleepUntil(*next, stop)) break;
      const auto slot = *next;
      auto end = archive::NextSlot(schedule, slot);
      if (!end) break;
      Publish([&](replication::ArchiveStatusView& v) {
        v.next_slot_at = ToS(*end);
        v.next_backup_id = archive::SlotBackupId(*end);
      });
      HandleSlot(slot, *end, stop);
      // Every node, whoever took the slot: the newest backup and restore test for /metrics,
      // the size the next ETA is reckoned from.
      if (!stop.stop_requested()) RefreshFromStore();
      // A slot that began while this one ran is handled now; slots already over are missed.
      next = end;
      const auto now = system_clock::now();
      while (next && now >= *next) {
        auto after = archive::NextSlot(schedule, *next);
        if (!after || now < *after) break;
        Log()->warn("event=scheduled_backup_missed slot={} reason={}", archive::SlotBackupId(*next),
                    log::Quote("the previous slot ran past it"));
        next = after;
      }
    }
    SetState("off", "", "");
  }
};

Result<std::unique_ptr<BackupScheduler>> BackupScheduler::Create(const NodeSettings& settings,
                                                                 clone::Endpoint from,
                                                                 api::Server& server) {
  auto schedule = archive::ParseSchedule(settings.config.archive.schedule);
  if (!schedule) return Error(schedule.error().WithContext("archive.schedule"));
  auto impl = std::make_unique<Impl>(settings, server);
  impl->schedule = *schedule;
  impl->from = from;
  impl->node = settings.identity.hostname.empty() ? settings.config.node.hostname
                                                  : settings.identity.hostname;
  const auto& a = settings.config.archive;
  impl->step = seconds(a.claim_step);
  impl->claim_timeout = seconds(a.claim_timeout);
  impl->retry_backoff = seconds(a.retry_backoff);
  impl->restore_test_interval = seconds(a.restore_test_interval);
  impl->poll = std::clamp<milliseconds>(impl->step / 2, milliseconds(500), milliseconds(5000));
  impl->max_lag = static_cast<double>(settings.config.replication.max_lag);
  auto opened = OpenArchive(impl->settings, impl->stop_source.get_token());
  if (!opened) return Error(opened.error());
  auto recording = std::make_unique<RecordingStore>(std::move((*opened)->store));
  impl->store = recording.get();
  (*opened)->store = std::move(recording);
  impl->archive = std::move(*opened);
  auto clone_options = CloneOptionsFor(settings);
  if (!clone_options) return Error(clone_options.error());
  clone_options->require_ready_donor = false;  // the answer says ready; the probe need not
  auto discover = DiscoverOptionsFor(settings);
  if (!discover) return Error(discover.error());
  impl->discover = std::move(*discover);
  impl->discover.probe_all = true;
  impl->discover.single_round = true;
  impl->discover.primary_after = milliseconds(0);
  auto resolver =
      discovery::AresResolver::Create(impl->io.get_executor(), AresOptionsFor(settings.config));
  if (!resolver) return Error(resolver.error());
  impl->resolver = std::move(*resolver);
  impl->prober = std::make_unique<clone::AuthenticatedProber>(*clone_options, kProbeTimeout);
  impl->Publish([&](replication::ArchiveStatusView& v) {
    v.enabled = true;
    v.schedule = schedule->ToString();
    v.store = impl->archive->store->Describe();
    v.state = "starting";
    for (const char* kind : replication::kBackupFailureKinds) v.failures.emplace(kind, 0);
  });
  return std::unique_ptr<BackupScheduler>(new BackupScheduler(std::move(impl)));
}

BackupScheduler::BackupScheduler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

BackupScheduler::~BackupScheduler() { Stop(); }

void BackupScheduler::Start() {
  if (thread_.joinable()) return;
  Log()->info("event=backup_schedule_started schedule={} store={} node={} claim_step_s={}",
              log::Quote(impl_->schedule.ToString()), log::Quote(impl_->archive->store->Describe()),
              impl_->node, impl_->step.count());
  thread_ = std::jthread([impl = impl_.get()] { impl->Run(impl->stop_source.get_token()); });
}

void BackupScheduler::Stop() {
  if (!thread_.joinable()) return;
  impl_->stop_source.request_stop();
  thread_.join();
}

}  // namespace replboot::daemon
