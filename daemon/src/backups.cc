#include "replboot/daemon/backups.h"
#include "replboot/daemon/pitr_restore.h"

#include <unistd.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

#include "backup_stream_inspector.h"
#include "replboot/archive/layout.h"
#include "replboot/archive/reader.h"
#include "replboot/archive/retention.h"
#include "replboot/archive/writer.h"
#include "replboot/backup/xbstream_reader.h"
#include "replboot/base/files.h"
#include "replboot/base/log.h"
#include "replboot/clone/stream.h"
#include "replboot/daemon/primary_recovery.h"
#include "replboot/replication/gtid.h"
#include "replboot/replication/position.h"

namespace replboot::daemon {

namespace {

auto Log() { return log::Get("archive"); }

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The stream's sink for a backup: into the writer, and through the parser (`inspector`
// outlives the sink, which FetchStream owns).
class ArchiveSink : public clone::StreamSink {
 public:
  ArchiveSink(archive::BackupWriter& writer, Flavour flavour, BackupStreamInspector* inspector)
      : writer_(writer), reader_({.flavour = flavour}, inspector) {}
  Status Write(std::span<const uint8_t> bytes) override {
    REPLBOOT_RETURN_STATUS_IF_ERROR(reader_.Feed(bytes));
    return writer_.Write(bytes);
  }
  Status Finish() override { return reader_.Finish(); }
  void Abort() override { writer_.Abort(); }

 private:
  archive::BackupWriter& writer_;
  backup::XbstreamReader reader_;
};

store::StoreOptions StoreOptionsFor(const conf::Config::Archive& a, std::stop_token stop) {
  store::StoreOptions o;
  o.url = a.store;
  o.endpoint = a.endpoint;
  o.region = a.region;
  o.addressing = a.addressing == "path"      ? store::StoreOptions::Addressing::kPath
                 : a.addressing == "virtual" ? store::StoreOptions::Addressing::kVirtualHost
                                             : store::StoreOptions::Addressing::kAuto;
  o.ca_file = a.ca_file;
  o.access_key_file = a.access_key_file;
  o.secret_key_file = a.secret_key_file;
  o.session_token_file = a.session_token_file;
  o.stop = stop;
  return o;
}

}  // namespace

Result<std::unique_ptr<Archive>> OpenArchive(const NodeSettings& settings, std::stop_token stop) {
  const auto& a = settings.config.archive;
  if (a.store.empty()) {
    return Error(StatusCode::kInvalidArgument,
                 "no backup store configured (archive.store, e.g. s3://bucket/prefix or "
                 "file:///backups)");
  }
  auto key = archive::LoadKeyFile(a.key_file);
  if (!key) return Error(key.error().WithContext("archive.key_file"));
  auto store = store::OpenStore(StoreOptionsFor(a, stop));
  if (!store) return Error(store.error().WithContext("archive.store"));
  auto out = std::make_unique<Archive>();
  out->store = std::move(*store);
  out->key = std::move(*key);
  return out;
}

Result<archive::Manifest> TakeBackup(const NodeSettings& settings, Archive& archive,
                                     const TakeBackupOptions& options) {
  const int64_t started_at = NowMs();
  const std::string node =
      settings.identity.hostname.empty() ? settings.config.node.hostname : settings.identity.hostname;
  if (!options.claimed) {
    auto claimed = archive::ClaimBackup(*archive.store, options.backup_id, node, started_at);
    if (!claimed)
      return Error(claimed.error().WithContext("claiming backup " + options.backup_id));
    if (!*claimed) {
      return Error(StatusCode::kInvalidArgument, "backup {} is claimed by another node",
                   options.backup_id);
    }
  }
  auto clone_options = CloneOptionsFor(settings);
  if (!clone_options) return Error(clone_options.error());
  clone_options->stop = options.stop;
  clone_options->check_free_space = false;  // nothing lands on this node's disk
  clone_options->expected_ordinal = options.from_ordinal;
  clone_options->client_name = node + "/archive";

  archive::WriterOptions writer_options;
  writer_options.backup_id = options.backup_id;
  writer_options.key = archive.key;
  writer_options.object_bytes = static_cast<size_t>(settings.config.archive.object_size_mb) << 20;
  writer_options.zstd_level = static_cast<int>(settings.config.archive.compression_level);
  writer_options.stop = options.stop;
  writer_options.before_manifest = options.before_manifest;
  auto last_log = std::make_shared<std::chrono::steady_clock::time_point>();
  writer_options.on_progress = [id = options.backup_id, cb = options.on_progress, last_log,
                                expected = options.expected_bytes](const archive::WriterProgress& p) {
    if (cb) cb(p.logical_bytes, p.stored_bytes, p.logical_bytes_per_second);
    const auto now = std::chrono::steady_clock::now();
    if (now - *last_log >= std::chrono::seconds(5)) {
      *last_log = now;
      // The ETA assumes this backup is as large as the previous one: -1 when that is unknown,
      // 0 once it has grown past it.
      const double rate = p.logical_bytes_per_second;
      const int64_t eta =
          expected == 0 || rate <= 0
              ? -1
              : static_cast<int64_t>(
                    static_cast<double>(expected > p.logical_bytes ? expected - p.logical_bytes : 0) /
                    rate);
      Log()->info(
          "event=backup_progress id={} bytes={} expected_bytes={} stored_bytes={} objects={} "
          "mb_per_s={:.1f} eta_s={}",
          id, p.logical_bytes, expected, p.stored_bytes, p.objects, rate / 1e6, eta);
    }
  };
  auto writer = archive::BackupWriter::Create(*archive.store, writer_options);
  if (!writer) return Error(writer.error());
  BackupStreamInspector inspector;
  Log()->info("event=backup_started id={} store={} from={}", options.backup_id,
              log::Quote(archive.store->Describe()), discovery::EndpointText(options.from));
  auto fetched = clone::FetchStream(
      options.from, *clone_options,
      [&](const clone::FetchedStream&) -> Result<std::unique_ptr<clone::StreamSink>> {
        return std::unique_ptr<clone::StreamSink>(
            std::make_unique<ArchiveSink>(**writer, settings.flavour, &inspector));
      });
  if (!fetched) {
    (*writer)->Abort();
    return Error(fetched.error().WithContext("backup " + options.backup_id));
  }
  auto position = inspector.Position(settings.flavour);
  if (!position) {
    (*writer)->Abort();
    return Error(position.error().WithContext("backup " + options.backup_id));
  }
  archive::Manifest meta;
  meta.cluster_id = fetched->header.cluster_id;
  meta.node = fetched->donor_node.name.empty() ? node : fetched->donor_node.name;
  meta.flavour = fetched->header.flavour;
  meta.server_version = fetched->header.server_version;
  meta.tool_version = fetched->header.tool_version;
  meta.gtid_position = position->gtid;
  meta.binlog_file = position->log_file;
  meta.binlog_position = position->log_pos;
  meta.started_at_ms = started_at;
  meta.finished_at_ms = NowMs();
  auto manifest = (*writer)->Finish(std::move(meta));
  if (!manifest) return Error(manifest.error().WithContext("backup " + options.backup_id));
  // Finish read every object back: the backup is verified as of now.
  archive::BackupChecks checks;
  checks.verified_at_ms = NowMs();
  if (Status s = archive::WriteChecks(*archive.store, archive.key, manifest->backup_id, checks);
      !s.ok()) {
    Log()->warn("event=backup_checks_not_written id={} error={}", manifest->backup_id,
                log::Quote(s.message()));
  }
  Log()->info(
      "event=backup_done id={} bytes={} stored_bytes={} objects={} gtid={} cluster_id={} "
      "seconds={:.1f}",
      manifest->backup_id, manifest->logical_bytes, manifest->stored_bytes,
      manifest->objects.size(), log::Quote(manifest->gtid_position),
      manifest->cluster_id.empty() ? "-" : manifest->cluster_id,
      static_cast<double>(manifest->finished_at_ms - manifest->started_at_ms) / 1000.0);
  return manifest;
}

Result<archive::Manifest> ChooseBackup(Archive& archive, const std::string& which,
                                       const std::string& cluster) {
  if (which != "latest") {
    if (!archive::IsBackupId(which)) {
      return Error(StatusCode::kInvalidArgument,
                   "{} is not a backup id (like 20261207T061500Z) or \"latest\"", log::Printable(which));
    }
    auto manifest = archive::LoadManifest(*archive.store, archive.key, which);
    if (!manifest) return Error(manifest.error());
    if (!cluster.empty() && manifest->cluster_id != cluster) {
      return Error(StatusCode::kInvalidArgument,
                   "backup {} is of cluster {}, not of {} (the cluster asked for)", which,
                   manifest->cluster_id.empty() ? "(none)" : manifest->cluster_id, cluster);
    }
    return manifest;
  }
  if (!cluster.empty()) return archive::LatestBackup(*archive.store, archive.key, cluster);
  auto entries = archive::ListBackups(*archive.store, archive.key);
  if (!entries) return Error(entries.error());
  std::map<std::string, int> clusters;
  for (const auto& e : *entries) {
    if (e.complete && e.manifest) clusters[e.manifest->cluster_id]++;
  }
  if (clusters.empty()) {
    std::string incomplete;
    for (const auto& e : *entries) {
      if (!e.complete)
        incomplete += fmt::format("{}{}: {}", incomplete.empty() ? "" : "; ", e.id, e.problem);
    }
    return Error(StatusCode::kNotFound, "{} holds no complete backup{}",
                 archive.store->Describe(),
                 incomplete.empty() ? "" : " (incomplete: " + incomplete + ")");
  }
  if (clusters.size() > 1) {
    std::string names;
    for (const auto& [id, n] : clusters)
      names += fmt::format("{}{} ({} backups)", names.empty() ? "" : ", ",
                           id.empty() ? "(none)" : id, n);
    return Error(StatusCode::kInvalidArgument,
                 "{} holds backups of several clusters: {}; name the one to restore "
                 "(archive.source_cluster, or --cluster)",
                 archive.store->Describe(), names);
  }
  // The listing has every manifest already: no second round of reads.
  return *archive::NewestComplete(*entries, clusters.begin()->first);
}

Result<clone::CloneResult> RestoreBackup(const NodeSettings& settings, Archive& archive,
                                         const archive::Manifest& manifest,
                                         const RestoreOptions& options) {
  auto clone_options = CloneOptionsFor(settings);
  if (!clone_options) return Error(clone_options.error());
  clone_options->datadir = options.datadir;
  clone_options->stop = options.stop;
  clone_options->on_progress = options.on_progress;
  if (manifest.flavour != FlavourName(settings.flavour)) {
    return Error(StatusCode::kInvalidArgument, "backup {} is of a {} server, this node runs {}",
                 manifest.backup_id, manifest.flavour, FlavourName(settings.flavour));
  }
  // Every object is there before anything is staged: a missing one is named at once.
  auto listed = archive.store->List(archive::ObjectsPrefix(manifest.backup_id));
  if (!listed) return Error(listed.error().WithContext("listing backup " + manifest.backup_id));
  std::map<std::string, uint64_t> present;
  for (const auto& o : *listed) present[o.key] = o.size;
  for (const auto& o : manifest.objects) {
    const std::string key = archive::ObjectKey(manifest.backup_id, o.index);
    auto it = present.find(key);
    if (it == present.end()) {
      return Error(StatusCode::kNotFound, "object {} of backup {} is missing (key {}); nothing "
                   "was written into {}", o.index, manifest.backup_id, key, options.datadir);
    }
    if (it->second != o.stored_bytes) {
      return Error(StatusCode::kCorruption,
                   "object {} of backup {} has {} bytes in the store, the manifest says {}; "
                   "nothing was written into {}",
                   o.index, manifest.backup_id, it->second, o.stored_bytes, options.datadir);
    }
  }
  clone::StreamHeader header;
  header.flavour = manifest.flavour;
  header.server_version = manifest.server_version;
  header.tool_version = manifest.tool_version;
  header.cluster_id = manifest.cluster_id;
  header.estimated_bytes = manifest.logical_bytes;
  if (options.as_primary) {
    // The backup's place in the cluster's history: the restored primary's binlog continues it
    // (primary_recovery.h, the promotion marker), so a replica cloned from it replicates on.
    // After a replay, the place it reached.
    const std::string& text = options.gtid_state ? *options.gtid_state : manifest.gtid_position;
    auto executed = replication::GtidSet::Parse(text, settings.flavour);
    if (!executed) return Error(executed.error().WithContext("backup " + manifest.backup_id));
    const std::string gtid_state = executed->ToString();
    const auto owner = settings.mysql_user;
    clone_options->before_commit = [gtid_state, owner, id = manifest.backup_id,
                                    before = options.before_marker, extra = options.marker_extra](
                                       const std::string& staging,
                                       const clone::StreamHeader& h) -> Status {
      if (before) REPLBOOT_RETURN_STATUS_IF_ERROR(before(staging));
      return WritePromotionMarker(staging, "backup " + id, gtid_state, h.cluster_id, owner, extra);
    };
  } else if (options.before_marker) {
    clone_options->before_commit = [before = options.before_marker](
                                       const std::string& staging,
                                       const clone::StreamHeader&) { return before(staging); };
  }
  const std::string source = "backup " + manifest.backup_id;
  Log()->info("event=restore_started id={} store={} datadir={} bytes={} objects={} gtid={}",
              manifest.backup_id, log::Quote(archive.store->Describe()),
              log::Quote(options.datadir), manifest.logical_bytes, manifest.objects.size(),
              log::Quote(manifest.gtid_position));
  auto last_log = std::chrono::steady_clock::now();
  archive::ReadOptions read_options;
  read_options.stop = options.stop;
  read_options.on_progress = [&](const archive::ReadProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_log < std::chrono::seconds(5) && p.objects != p.objects_total) return;
    last_log = now;
    const double rate = p.logical_bytes_per_second;
    Log()->info("event=restore_progress id={} bytes={} total_bytes={} objects={}/{} "
                "mb_per_s={:.1f} eta_s={}",
                manifest.backup_id, p.logical_bytes, p.logical_total, p.objects,
                p.objects_total, rate / 1e6,
                rate > 0 ? static_cast<int64_t>(static_cast<double>(p.logical_total -
                                                                    p.logical_bytes) / rate)
                         : -1);
  };
  auto result = clone::CommitStream(
      *clone_options, source, header, [&](clone::StreamSink& sink) -> Result<uint64_t> {
        uint64_t bytes = 0;
        Status s = archive::ReadBackup(
            *archive.store, manifest, archive.key,
            [&](std::span<const uint8_t> data) {
              bytes += data.size();
              return sink.Write(data);
            },
            read_options);
        if (!s.ok()) return Error(s.WithContext("restoring backup " + manifest.backup_id));
        return bytes;
      });
  if (!result) return result;
  Log()->info("event=restore_done id={} datadir={} bytes={} fetch_s={:.1f} prepare_s={:.1f}",
              manifest.backup_id, log::Quote(options.datadir), result->bytes,
              result->fetch_seconds, result->prepare_seconds);
  return result;
}

Result<std::vector<std::string>> PruneBackups(const NodeSettings& settings, Archive& archive,
                                              bool dry_run) {
  auto entries = archive::ListBackups(*archive.store, archive.key);
  if (!entries) return Error(entries.error());
  std::vector<archive::RetentionItem> items;
  std::vector<std::string> abandoned;
  const int64_t now = NowMs();
  for (const auto& e : *entries) {
    if (e.complete && e.manifest) {
      const bool verified =
          e.checks && e.checks->verified_at_ms > 0 && e.checks->verify_error.empty();
      items.push_back({e.id, e.manifest->finished_at_ms, verified});
    } else if (!e.manifest) {
      // No manifest: a backup that failed or is being written. Taken for abandoned only a day
      // after its id's time, far past any backup's run.
      auto t = archive::BackupIdTime(e.id);
      if (t && now - std::chrono::duration_cast<std::chrono::milliseconds>(
                         t->time_since_epoch()).count() > 86'400'000) {
        abandoned.push_back(e.id);
      }
    }
  }
  archive::RetentionPolicy policy;
  policy.keep_last = static_cast<int>(settings.config.archive.keep_last);
  policy.keep_days = static_cast<int>(settings.config.archive.keep_days);
  archive::RetentionPlan plan = archive::PlanRetention(items, policy, now);
  std::vector<std::string> gone;
  for (const auto& id : plan.remove) {
    Log()->info("event=backup_{} id={} reason={}", dry_run ? "would_delete" : "delete", id,
                log::Quote(plan.why[id]));
    if (!dry_run) REPLBOOT_RETURN_IF_ERROR(archive::DeleteBackup(*archive.store, id));
    gone.push_back(id);
  }
  for (const auto& id : abandoned) {
    Log()->info("event=backup_{} id={} reason={}", dry_run ? "would_delete" : "delete", id,
                log::Quote("incomplete (no manifest) for over a day"));
    if (!dry_run) REPLBOOT_RETURN_IF_ERROR(archive::DeleteBackup(*archive.store, id));
    gone.push_back(id);
  }
  // The binlog segments only the removed backups needed.
  auto segments = PruneSegments(settings, archive, plan.keep, dry_run);
  if (!segments) return Error(segments.error().WithContext("binlog retention"));
  for (auto& key : *segments) gone.push_back(std::move(key));
  return gone;
}

}  // namespace replboot::daemon
