#include "replboot/daemon/binlog_archiver.h"

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>

#include "replboot/base/log.h"
#include "replboot/binlog/cutter.h"

namespace replboot::daemon {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
using std::chrono::system_clock;

namespace {

auto Log() { return log::Get("binlog"); }

constexpr std::string_view kLeasePrefix = "binlog-lease/";
constexpr std::string_view kEpochPrefix = "binlog-lease/epoch-";
constexpr std::string_view kBeatSuffix = ".beat";
constexpr uint64_t kMaxLeaseObject = 4096;
// The primary's turn comes after this many replicas' turns.
constexpr int64_t kPrimaryRank = 4;

int64_t NowMs() {
  return std::chrono::duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

// Sleeps `d`, woken early by a stop; false when stopped.
bool Sleep(milliseconds d, std::stop_token stop) {
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  cv.wait_for(lock, stop, d, [] { return false; });
  return !stop.stop_requested();
}

}  // namespace

// --- pure rules ------------------------------------------------------------------------

LeaseDecision DecideLease(const LeaseInput& in) {
  LeaseDecision d;
  const milliseconds step = std::chrono::duration_cast<milliseconds>(in.timeout) / 3;
  const int64_t rank = in.primary ? kPrimaryRank : std::max<int64_t>(0, in.ordinal - 1);
  if (!in.ready) {
    d.reason = "this node is not ready";
    return d;
  }
  if (in.epoch != 0 && in.held_here) {
    d.reason = fmt::format("this node holds epoch {}", in.epoch);
    return d;
  }
  if (in.epoch != 0 && in.holder == in.node) {
    d.take = true;
    d.reason = fmt::format("epoch {} is this node's from before its restart: taken over at once",
                           in.epoch);
    return d;
  }
  const milliseconds turn = step * rank;
  const std::string who =
      in.primary ? fmt::format("the primary, after {} replicas' turns", kPrimaryRank)
                 : fmt::format("replica {} in line", rank + 1);
  if (in.epoch == 0) {
    d.after = turn;
    d.take = in.unchanged_for >= d.after;
    d.reason = fmt::format("no archiver yet; this node {}: may take it {}ms after the first look",
                           who, d.after.count());
    return d;
  }
  d.after = std::chrono::duration_cast<milliseconds>(in.timeout) + turn;
  d.take = in.unchanged_for >= d.after;
  d.reason = fmt::format(
      "{} holds epoch {}; this node {}: may take it over once its beat is unchanged for {}ms",
      in.holder.empty() ? "an unknown node" : in.holder, in.epoch, who, d.after.count());
  return d;
}

std::string LeaseEpochKey(uint64_t epoch) { return fmt::format("{}{:020}", kEpochPrefix, epoch); }
std::string LeaseBeatKey(uint64_t epoch) { return LeaseEpochKey(epoch) + std::string(kBeatSuffix); }

std::optional<uint64_t> ParseEpochKey(std::string_view key) {
  if (!key.starts_with(kEpochPrefix)) return std::nullopt;
  key.remove_prefix(kEpochPrefix.size());
  if (key.size() != 20) return std::nullopt;
  for (char c : key) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(key.data(), key.data() + key.size(), n);
  if (ec != std::errc() || p != key.data() + key.size() || n == 0) return std::nullopt;
  return n;
}

void LagWindow::Add(int64_t sealed_at_ms, double lag_seconds) {
  samples_.emplace_back(sealed_at_ms, lag_seconds);
  if (samples_.size() - head_ > max_) ++head_;
  // Compact now and then, so the vector does not grow without bound.
  if (head_ > 4096 && head_ * 2 > samples_.size()) {
    samples_.erase(samples_.begin(), samples_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
}

LagWindow::Stats LagWindow::Compute(int64_t now_ms) {
  const int64_t from = now_ms - std::chrono::duration_cast<milliseconds>(window_).count();
  while (head_ < samples_.size() && samples_[head_].first < from) ++head_;
  Stats s;
  std::vector<double> lags;
  lags.reserve(samples_.size() - head_);
  for (size_t i = head_; i < samples_.size(); ++i) lags.push_back(samples_[i].second);
  s.count = lags.size();
  if (lags.empty()) return s;
  auto quantile = [&](double q) {
    const size_t k = std::min(lags.size() - 1, static_cast<size_t>(q * (lags.size() - 1) + 0.5));
    std::nth_element(lags.begin(), lags.begin() + static_cast<std::ptrdiff_t>(k), lags.end());
    return lags[k];
  };
  s.max = *std::max_element(lags.begin(), lags.end());
  s.p50 = quantile(0.5);
  s.p99 = quantile(0.99);
  return s;
}

// --- the service ---------------------------------------------------------------------

struct BinlogArchiver::Impl {
  BinlogArchiverOptions options;
  BinlogArchiverDeps deps;
  replication::BinlogArchiveStatus& status;
  std::stop_source stop_source;
  LagWindow lags;

  // The lease as this node sees it.
  uint64_t seen_epoch = 0;
  std::string seen_holder;
  std::string seen_beat;
  steady_clock::time_point unchanged_since = steady_clock::now();
  bool first_look = true;
  // This process's lease (0: none).
  std::atomic<uint64_t> my_epoch{0};
  std::atomic<bool> fenced_seen{false};
  std::jthread beater;
  std::string last_reason;
  // A gap's backup in progress.
  std::atomic<bool> gap_backup_running{false};

  Impl(BinlogArchiverOptions o, BinlogArchiverDeps d, replication::BinlogArchiveStatus& s)
      : options(std::move(o)), deps(std::move(d)), status(s), lags(options.lag_window) {
    if (options.poll.count() == 0) {
      options.poll = std::clamp<milliseconds>(
          std::chrono::duration_cast<milliseconds>(options.lease_timeout) / 10, milliseconds(1000),
          milliseconds(5000));
    }
  }

  template <typename F>
  void Publish(F&& change) {
    status.Update(std::forward<F>(change));
  }

  void SetState(const std::string& state, const std::string& detail) {
    Publish([&](replication::BinlogArchiveStatusView& v) {
      v.state = state;
      v.detail = detail;
    });
  }

  // --- the lease ---

  // Reads the newest epoch and its beat; updates how long it has been unchanged. False when
  // the store did not answer (then nothing can be judged: the clock restarts).
  bool Observe() {
    const auto now = steady_clock::now();
    auto listed = deps.lease_store->List(std::string(kLeasePrefix));
    if (!listed) {
      unchanged_since = now;
      SetState("store_unreachable", "the lease cannot be read: " + listed.error().message());
      return false;
    }
    uint64_t newest = 0;
    for (const auto& o : *listed) {
      if (auto e = ParseEpochKey(o.key)) newest = std::max(newest, *e);
    }
    std::string holder, beat;
    if (newest != 0) {
      auto record = deps.lease_store->Get(LeaseEpochKey(newest), kMaxLeaseObject);
      if (!record) {
        unchanged_since = now;
        return false;
      }
      auto j = nlohmann::json::parse(record->begin(), record->end(), nullptr, false);
      if (j.is_object() && j.contains("node") && j["node"].is_string())
        holder = j["node"].get<std::string>();
      auto b = deps.lease_store->Get(LeaseBeatKey(newest), kMaxLeaseObject);
      if (b) {
        beat.assign(b->begin(), b->end());
      } else if (b.error().code() != StatusCode::kNotFound) {
        unchanged_since = now;
        return false;
      }
    }
    if (first_look || newest != seen_epoch || beat != seen_beat) {
      unchanged_since = now;
      first_look = false;
    }
    seen_epoch = newest;
    seen_holder = holder;
    seen_beat = beat;
    Publish([&](replication::BinlogArchiveStatusView& v) {
      v.holder = holder;
      v.epoch = newest;
    });
    return true;
  }

  // Tries to take epoch seen_epoch + 1: true when this node won it.
  bool Take() {
    const uint64_t epoch = seen_epoch + 1;
    nlohmann::json j = {{"node", options.node}, {"epoch", epoch}, {"taken_at_ms", NowMs()}};
    auto won = deps.lease_store->PutIfAbsent(LeaseEpochKey(epoch), Bytes(j.dump()));
    if (!won) {
      Log()->warn("event=binlog_lease_take_failed epoch={} error={}", epoch,
                  log::Quote(won.error().message()));
      return false;
    }
    if (!*won) {
      Log()->info("event=binlog_lease_lost_race epoch={}", epoch);
      return false;
    }
    my_epoch = epoch;
    fenced_seen = false;
    Log()->info("event=binlog_lease_taken epoch={} node={} previous={}", epoch, options.node,
                seen_holder.empty() ? "-" : seen_holder);
    Publish([&](replication::BinlogArchiveStatusView& v) {
      v.role = "holder";
      v.holder = options.node;
      v.epoch = epoch;
      if (epoch > 1) ++v.takeovers;
    });
    // Older epochs are history: removed (best effort) so the listing stays short.
    if (epoch > 2) {
      for (uint64_t old = std::max<uint64_t>(1, epoch > 64 ? epoch - 64 : 1); old + 1 < epoch;
           ++old) {
        (void)deps.lease_store->Delete(LeaseBeatKey(old));
        (void)deps.lease_store->Delete(LeaseEpochKey(old));
      }
    }
    StartBeats(epoch);
    return true;
  }

  void StartBeats(uint64_t epoch) {
    const milliseconds every =
        std::max(milliseconds(500), std::chrono::duration_cast<milliseconds>(options.lease_timeout) / 3);
    beater = std::jthread([this, epoch, every](std::stop_token stop) {
      uint64_t beat = 0;
      while (!stop.stop_requested() && my_epoch == epoch) {
        // A later epoch means another node took over: the streaming loop stops at its next
        // event, not only at its next upload.
        if (auto fenced = Fenced(epoch); fenced && *fenced) {
          fenced_seen = true;
          break;
        }
        nlohmann::json j = {{"node", options.node}, {"epoch", epoch}, {"beat", ++beat},
                            {"at_ms", NowMs()}};
        Status s = deps.lease_store->Put(LeaseBeatKey(epoch), Bytes(j.dump()));
        if (!s.ok()) {
          Log()->warn("event=binlog_lease_beat_failed epoch={} error={}", epoch,
                      log::Quote(s.message()));
        }
        if (!Sleep(every, stop)) break;
      }
    });
  }

  void Release() {
    my_epoch = 0;
    if (beater.joinable()) {
      beater.request_stop();
      beater.join();
    }
    Publish([&](replication::BinlogArchiveStatusView& v) { v.role = "standby"; });
  }

  // Another node took a later epoch: kCancelled-like outcome for the holder.
  Result<bool> Fenced(uint64_t epoch) {
    auto next = deps.lease_store->Get(LeaseEpochKey(epoch + 1), kMaxLeaseObject);
    if (next) return true;
    if (next.error().code() == StatusCode::kNotFound) return false;
    return Error(next.error());
  }

  // --- archiving ---

  enum class Outcome { kSealed, kStopped, kFenced, kReconnect, kGap };

  // Uploads `cut` until it is in the store, this node is fenced, or it stops.
  Outcome PutSegment(const binlog::CutSegment& cut, uint64_t epoch, std::stop_token stop,
                     std::string* gap_reason) {
    milliseconds backoff(500);
    while (!stop.stop_requested()) {
      auto fenced = Fenced(epoch);
      Status failure;
      if (fenced && *fenced) return Outcome::kFenced;
      if (!fenced) {
        failure = fenced.error();
      } else {
        auto key = deps.put_segment(cut.segment);
        if (key) {
          Sealed(cut, *key);
          return Outcome::kSealed;
        }
        failure = key.error();
        if (failure.code() == StatusCode::kInvalidArgument) {
          // The store side refuses the segment itself (e.g. a transaction over its size
          // bound): it can never be archived. A gap; the next chain starts after it.
          *gap_reason = "the store side refused a segment: " + failure.message();
          return Outcome::kGap;
        }
      }
      Publish([&](replication::BinlogArchiveStatusView& v) {
        ++v.put_failures;
        v.state = "store_unreachable";
        v.detail = fmt::format("segment {}..{} not uploaded, retrying in {}ms",
                               cut.segment.first_gtid, cut.segment.last_gtid, backoff.count());
        v.last_error = failure.message();
        v.pending_seconds = std::chrono::duration<double>(steady_clock::now() - cut.first_arrival)
                                .count();
      });
      Log()->warn("event=binlog_segment_put_failed first={} last={} retry_in_ms={} error={}",
                  cut.segment.first_gtid, cut.segment.last_gtid, backoff.count(),
                  log::Quote(failure.message()));
      if (!Sleep(backoff, stop)) break;
      backoff = std::min(backoff * 2, milliseconds(5000));
    }
    return Outcome::kStopped;
  }

  void Sealed(const binlog::CutSegment& cut, const std::string& key) {
    const int64_t now_ms = NowMs();
    const double now_s = static_cast<double>(now_ms) / 1000.0;
    double sum = 0;
    for (uint32_t t : cut.commit_times) {
      const double lag = std::max(0.0, now_s - static_cast<double>(t));
      lags.Add(now_ms, lag);
      sum += lag;
    }
    const LagWindow::Stats stats = lags.Compute(now_ms);
    const binlog::BinlogSegment& s = cut.segment;
    Publish([&](replication::BinlogArchiveStatusView& v) {
      ++v.segments;
      v.transactions += s.transactions;
      v.bytes += s.binlog.size();
      v.newest_gtid = s.last_gtid;
      v.newest_commit_time = s.last_commit_time;
      v.newest_sealed_at = now_ms / 1000;
      v.newest_segment = key;
      v.lag_sum += sum;
      v.lag_count += cut.commit_times.size();
      v.lag_p50 = stats.p50;
      v.lag_p99 = stats.p99;
      v.lag_max = stats.max;
      v.lag_window_count = stats.count;
      v.lag_window_seconds = lags.window().count();
      v.state = "archiving";
      v.detail = fmt::format("streaming from the primary; last segment {}", key);
    });
    Log()->debug("event=binlog_segment_sealed key={} transactions={} bytes={} first={} last={}",
                 key, s.transactions, s.binlog.size(), s.first_gtid, s.last_gtid);
  }

  void Gap(const std::string& reason, const std::string& position) {
    Log()->error("event=binlog_archive_gap position={} reason={}", log::Quote(position),
                 log::Quote(reason));
    Publish([&](replication::BinlogArchiveStatusView& v) {
      ++v.gaps;
      v.gap_open = true;
      v.last_gap = fmt::format("after {}: {}", position.empty() ? "(empty)" : position, reason);
      v.last_gap_at = NowMs() / 1000;
      v.state = "gap";
      v.detail = "a new chain starts from the primary's position; a backup is requested";
    });
    if (!deps.request_backup || gap_backup_running.exchange(true)) return;
    deps.request_backup([this](const std::string& id, const Status& result) {
      gap_backup_running = false;
      if (result.ok()) {
        Log()->info("event=binlog_gap_backup_done id={}", id);
      } else {
        Log()->error("event=binlog_gap_backup_failed id={} error={}", id,
                     log::Quote(result.message()));
      }
      Publish([&](replication::BinlogArchiveStatusView& v) {
        v.gap_backup_id = id;
        v.gap_backup_result = result.ok() ? "ok" : result.message();
        if (result.ok()) v.gap_open = false;
      });
    });
  }

  // Where this holder's chain starts: the archive's newest segment of `history`, the newest
  // backup, or the primary now (a new chain).
  Result<binlog::GtidState> StartPosition(const std::string& history, std::string* source) {
    auto newest = deps.newest_end_state(history);
    if (!newest) return Error(newest.error().WithContext("the archive's newest segment"));
    if (*newest) {
      *source = "archive";
      return binlog::GtidState::Parse(**newest);
    }
    if (deps.backup_position) {
      auto backup = deps.backup_position();
      if (!backup) return Error(backup.error().WithContext("the newest backup"));
      if (*backup && !(*backup)->empty()) {
        *source = "backup";
        return binlog::GtidState::Parse(**backup);
      }
    }
    auto now = deps.primary_binlog_state();
    if (!now) return Error(now.error().WithContext("the primary's gtid_binlog_state"));
    *source = "primary";
    Log()->warn("event=binlog_archive_new_chain history={} position={} reason={}", history,
                log::Quote(*now),
                log::Quote("neither an archived segment nor a backup of this history"));
    return binlog::GtidState::Parse(*now);
  }

  // Archives as the holder of `epoch` until fenced or stopped.
  Outcome Archive(uint64_t epoch, std::stop_token stop) {
    milliseconds backoff(500);
    std::optional<binlog::GtidState> resume;  // after the last sealed segment of this holder
    std::string history;
    while (!stop.stop_requested()) {
      auto fenced = Fenced(epoch);
      if (fenced && *fenced) return Outcome::kFenced;
      auto h = deps.primary_history();
      if (!h) {
        SetState("reconnecting", "the primary's history: " + h.error().message());
        Publish([&](auto& v) { v.last_error = h.error().message(); });
        if (!Sleep(backoff, stop)) break;
        backoff = std::min(backoff * 2, milliseconds(5000));
        continue;
      }
      if (*h != history) resume.reset();  // a new history (a restore): its own chain
      history = *h;
      std::string source = "resume";
      if (!resume) {
        auto start = StartPosition(history, &source);
        if (!start) {
          SetState("reconnecting", start.error().message());
          Publish([&](auto& v) { v.last_error = start.error().message(); });
          if (!Sleep(backoff, stop)) break;
          backoff = std::min(backoff * 2, milliseconds(5000));
          continue;
        }
        resume = *start;
        Publish([&](replication::BinlogArchiveStatusView& v) {
          v.history = history;
          v.chain_start = resume->ToString();
          v.start_source = source;
        });
        Log()->info("event=binlog_archive_start history={} position={} from={}", history,
                    log::Quote(resume->ToString()), source);
      }
      auto stream = deps.open_stream(resume->ConnectPosition());
      if (!stream) {
        Publish([&](replication::BinlogArchiveStatusView& v) {
          ++v.stream_errors;
          v.state = "reconnecting";
          v.detail = stream.error().message();
          v.last_error = stream.error().message();
        });
        Log()->warn("event=binlog_stream_failed error={}", log::Quote(stream.error().message()));
        if (!Sleep(backoff, stop)) break;
        backoff = std::min(backoff * 2, milliseconds(5000));
        continue;
      }
      SetState("archiving", fmt::format("streaming from the primary after {}",
                                        resume->ConnectPosition()));
      binlog::CutterOptions co;
      co.history = history;
      co.seal_interval = options.seal_interval;
      co.seal_bytes = options.seal_bytes;
      co.max_group_bytes = options.max_transaction_bytes;
      binlog::SegmentCutter cutter(co, *resume);
      std::string gap_reason;
      Status ended;
      auto last_publish = steady_clock::now();
      Outcome outcome = Outcome::kReconnect;
      while (!stop.stop_requested()) {
        if (fenced_seen) {
          outcome = Outcome::kFenced;
          break;
        }
        auto event = (*stream)->Next();
        const auto now = steady_clock::now();
        if (!event) {
          ended = event.error();
          if ((*stream)->LastErrorNumber() == db::kErrorReadingBinlog) {
            gap_reason = event.error().message();
            outcome = Outcome::kGap;
          }
          break;
        }
        auto sealed = cutter.Add(*event, now);
        if (!sealed) {
          ended = sealed.error();
          break;
        }
        if (*sealed) {
          const Outcome put = PutSegment(**sealed, epoch, stop, &gap_reason);
          if (put != Outcome::kSealed) {
            outcome = put;
            break;
          }
          resume = cutter.sealed_state();
          backoff = milliseconds(500);
        }
        if (now - last_publish >= milliseconds(250)) {
          last_publish = now;
          const auto pending = cutter.pending_since();
          Publish([&](replication::BinlogArchiveStatusView& v) {
            v.pending_seconds =
                pending ? std::chrono::duration<double>(now - *pending).count() : 0.0;
          });
        }
      }
      if (outcome == Outcome::kStopped || outcome == Outcome::kFenced) return outcome;
      if (stop.stop_requested()) break;
      // Whole transactions received before the end are sealed first: nothing is read twice.
      if (auto rest = cutter.Flush()) {
        Outcome o = PutSegment(*rest, epoch, stop, &gap_reason);
        if (o == Outcome::kStopped || o == Outcome::kFenced) return o;
        if (o == Outcome::kSealed) resume = cutter.sealed_state();
        if (o == Outcome::kGap) outcome = o;
      }
      if (outcome == Outcome::kGap) {
        Gap(gap_reason, resume->ToString());
        auto now = deps.primary_binlog_state();
        if (!now) {
          resume.reset();  // StartPosition decides again on the next round
        } else if (auto parsed = binlog::GtidState::Parse(*now)) {
          resume = *parsed;
          Log()->warn("event=binlog_archive_new_chain history={} position={} reason=gap", history,
                      log::Quote(*now));
          Publish([&](replication::BinlogArchiveStatusView& v) {
            v.chain_start = *now;
            v.start_source = "primary";
          });
        }
        continue;
      }
      Publish([&](replication::BinlogArchiveStatusView& v) {
        ++v.stream_errors;
        v.state = "reconnecting";
        v.detail = ended.message();
        v.last_error = ended.message();
        v.pending_seconds = 0;
      });
      Log()->warn("event=binlog_stream_ended position={} retry_in_ms={} error={}",
                  log::Quote(resume->ToString()), backoff.count(), log::Quote(ended.message()));
      if (!Sleep(backoff, stop)) break;
      backoff = std::min(backoff * 2, milliseconds(5000));
    }
    return Outcome::kStopped;
  }

  void Run(std::stop_token stop) {
    Publish([&](replication::BinlogArchiveStatusView& v) {
      v.enabled = true;
      v.role = "standby";
      v.state = "waiting_turn";
      v.lag_window_seconds = lags.window().count();
    });
    while (!stop.stop_requested()) {
      if (!Observe()) {
        Sleep(options.poll, stop);
        continue;
      }
      LeaseInput in;
      in.ready = deps.ready ? deps.ready() : true;
      in.primary = options.primary;
      in.ordinal = options.ordinal;
      in.node = options.node;
      in.epoch = seen_epoch;
      in.holder = seen_holder;
      in.held_here = false;
      in.unchanged_for =
          std::chrono::duration_cast<milliseconds>(steady_clock::now() - unchanged_since);
      in.timeout = options.lease_timeout;
      const LeaseDecision d = DecideLease(in);
      if (d.reason != last_reason) {
        Log()->info("event=binlog_archiver_turn take={} reason={}", d.take, log::Quote(d.reason));
        last_reason = d.reason;
      }
      SetState("waiting_turn", d.reason);
      if (!d.take || !Take()) {
        Sleep(options.poll, stop);
        continue;
      }
      const uint64_t epoch = my_epoch;
      const Outcome o = Archive(epoch, stop);
      Release();
      if (o == Outcome::kFenced) {
        Log()->warn("event=binlog_archiver_fenced epoch={} reason={}", epoch,
                    log::Quote("another node took a later epoch of the lease"));
        Publish([&](replication::BinlogArchiveStatusView& v) {
          ++v.fenced;
          v.state = "fenced";
          v.detail = fmt::format("epoch {} was taken over", epoch);
        });
        first_look = true;
      }
    }
    Release();
    SetState("off", "");
  }
};

BinlogArchiver::BinlogArchiver(BinlogArchiverOptions options, BinlogArchiverDeps deps,
                               replication::BinlogArchiveStatus& status)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(deps), status)) {}

BinlogArchiver::~BinlogArchiver() { Stop(); }

void BinlogArchiver::Start() {
  if (thread_.joinable()) return;
  Log()->info("event=binlog_archiver_started node={} seal_interval_ms={} seal_bytes={} "
              "lease_timeout_s={}",
              impl_->options.node, impl_->options.seal_interval.count(), impl_->options.seal_bytes,
              impl_->options.lease_timeout.count());
  thread_ = std::jthread([impl = impl_.get()] { impl->Run(impl->stop_source.get_token()); });
}

void BinlogArchiver::Stop() {
  if (!thread_.joinable()) return;
  impl_->stop_source.request_stop();
  thread_.join();
}

}  // namespace replboot::daemon
