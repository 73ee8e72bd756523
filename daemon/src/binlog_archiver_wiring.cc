#include "replboot/daemon/binlog_archiver_wiring.h"

#include <mutex>
#include <thread>

#include "replboot/archive/binlog_archive.h"
#include "replboot/archive/catalog.h"
#include "replboot/archive/histories.h"
#include "replboot/archive/layout.h"
#include "replboot/base/log.h"
#include "replboot/clone/cluster_id.h"
#include "replboot/daemon/backups.h"
#include "replboot/daemon/binlog_archiver.h"
#include "replboot/daemon/replication_wiring.h"
#include "replboot/db/binlog_stream.h"
#include "replboot/replication/health.h"

namespace replboot::daemon {

namespace {

auto Log() { return log::Get("binlog"); }

// A replication connection sends a heartbeat every 500 ms while idle; a read that waits this
// long means the primary or the path is gone.
constexpr std::chrono::seconds kStreamReadTimeout{10};

Result<std::string> SingleValue(db::Session& session, const std::string& sql) {
  auto rows = session.Query(sql);
  if (!rows) return Error(rows.error());
  if (rows->size() != 1 || rows->front().size() != 1) {
    return Error(StatusCode::kCorruption, "\"{}\" answered {} rows", sql, rows->size());
  }
  return rows->front().at(0).value_or("");
}

}  // namespace

uint32_t BinlogReaderServerId(uint32_t node_server_id) {
  const uint32_t id = kReaderServerIdBase + node_server_id;  // wraps mod 2^32 by design
  return id == 0 ? 1 : id;
}

struct LiveBinlogArchiver::Parts {
  NodeSettings settings;
  api::Server& node;
  std::optional<clone::Endpoint> backup_from;
  std::unique_ptr<Archive> archive;
  std::string cluster_id;
  std::string root_history;
  // Used by the archiver's thread only (one Session is one thread's).
  std::unique_ptr<archive::BinlogArchive> binlogs;
  std::unique_ptr<db::Session> local;
  db::ConnectOptions local_options;
  db::ConnectOptions source;  // the binlog stream's and @@gtid_binlog_state's
  // A gap's backup, on its own thread.
  std::mutex backup_mu;
  std::jthread gap_backup;
  std::unique_ptr<BinlogArchiver> archiver;

  Parts(NodeSettings s, api::Server& n) : settings(std::move(s)), node(n) {}

  Result<db::Session*> Local() {
    if (!local) {
      auto session = db::Connect(local_options);
      if (!session) return Error(session.error().WithContext("the local server"));
      local = std::move(*session);
    }
    return local.get();
  }

  Result<std::string> History() {
    auto session = Local();
    if (!session) return Error(session.error());
    auto rows = (*session)->Query(archive::kSelectHistorySql);
    if (!rows) {
      if ((*session)->LastErrorNumber() == archive::kNoSuchTableErrno) return root_history;
      local.reset();
      return Error(rows.error().WithContext("the history (replboot.history)"));
    }
    std::vector<std::optional<std::string>> ids;
    for (const auto& row : *rows) ids.push_back(row.size() > 0 ? row.at(0) : std::nullopt);
    return archive::HistoryFromAnswer(ids, cluster_id);
  }

  Result<std::string> BinlogState() {
    auto session = db::Connect(source);
    if (!session) return Error(session.error().WithContext("the primary"));
    return SingleValue(**session, "SELECT @@GLOBAL.gtid_binlog_state");
  }

  Result<std::optional<std::string>> NewestEndState(const std::string& history) {
    auto newest = binlogs->Newest(history);
    if (!newest) return Error(newest.error());
    if (!*newest) return std::optional<std::string>();
    // The key holds positions only; the full state is sealed inside the segment.
    auto segment = binlogs->Open(**newest);
    if (!segment) return Error(segment.error());
    return std::optional<std::string>(segment->end_state);
  }

  // The newest complete backup of `history` (by when it started); else, for a history a
  // restore began, its branch point.
  Result<std::optional<std::string>> ChainStartOfHistory(const std::string& history) {
    auto records = archive::ListHistories(*archive->store, archive->key, cluster_id);
    if (!records) return Error(records.error());
    auto entries = archive::ListBackups(*archive->store, archive->key);
    if (!entries) return Error(entries.error());
    const archive::Manifest* newest = nullptr;
    for (const auto& e : *entries) {
      if (!e.complete || !e.manifest || e.manifest->cluster_id != cluster_id) continue;
      if (archive::HistoryAt(*records, root_history, e.manifest->started_at_ms) != history) continue;
      if (newest == nullptr || e.manifest->started_at_ms > newest->started_at_ms) newest = &*e.manifest;
    }
    if (newest != nullptr) return std::optional<std::string>(newest->gtid_position);
    for (const auto& r : *records) {
      if (r.id == history) return std::optional<std::string>(r.branch_state);
    }
    return std::optional<std::string>();
  }

  void RequestBackup(std::function<void(const std::string&, const Status&)> done) {
    std::lock_guard lock(backup_mu);
    if (!backup_from) {
      done("-", Status(StatusCode::kUnavailable,
                       "this node serves no backups (no backup.secret): no backup was taken"));
      return;
    }
    if (gap_backup.joinable()) gap_backup.join();  // the archiver asks for one at a time
    const std::string id = archive::NewBackupId(std::chrono::system_clock::now());
    gap_backup = std::jthread([this, id, done = std::move(done)](std::stop_token stop) {
      Log()->info("event=binlog_gap_backup_start id={}", id);
      TakeBackupOptions options;
      options.backup_id = id;
      options.from = *backup_from;
      options.from_ordinal = settings.identity.ordinal;
      options.stop = stop;
      auto manifest = TakeBackup(settings, *archive, options);
      done(id, manifest ? Status::Ok() : manifest.error());
    });
  }
};

LiveBinlogArchiver::LiveBinlogArchiver(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

LiveBinlogArchiver::~LiveBinlogArchiver() { Stop(); }

void LiveBinlogArchiver::Stop() {
  if (!parts_) return;
  if (parts_->archiver) parts_->archiver->Stop();
  std::lock_guard lock(parts_->backup_mu);
  if (parts_->gap_backup.joinable()) {
    parts_->gap_backup.request_stop();
    parts_->gap_backup.join();
  }
}

Result<std::unique_ptr<LiveBinlogArchiver>> LiveBinlogArchiver::Start(
    const NodeSettings& settings, api::Server& node, std::optional<clone::Endpoint> backup_from) {
  const conf::Config& config = settings.config;
  auto parts = std::make_unique<Parts>(settings, node);
  parts->backup_from = backup_from;
  auto archive = OpenArchive(settings);
  if (!archive) return Error(archive.error());
  parts->archive = std::move(*archive);
  auto cluster = clone::ReadClusterId(config.mysql.datadir);
  if (!cluster) return Error(cluster.error());
  if (!*cluster) {
    return Error(StatusCode::kInvalidArgument,
                 "the datadir {} holds no cluster id: the archive cannot name its segments",
                 config.mysql.datadir);
  }
  parts->cluster_id = **cluster;
  auto root = archive::RootHistoryId(parts->cluster_id);
  if (!root) return Error(root.error());
  parts->root_history = *root;
  parts->binlogs = std::make_unique<archive::BinlogArchive>(*parts->archive->store,
                                                            parts->archive->key, parts->cluster_id);
  parts->local_options = LocalRootOptions(settings);
  const bool primary = settings.identity.role == conf::Role::kPrimary;
  if (primary) {
    parts->source = parts->local_options;
  } else {
    auto password = conf::ResolveSecret(config.replication.password,
                                        config.replication.password_file, "replication.password");
    if (!password) return Error(password.error());
    parts->source.host = settings.identity.PeerName(0, config.cluster.service);
    parts->source.port = static_cast<int>(config.mysql.port);
    parts->source.user = config.replication.user;
    parts->source.password = *password;
    parts->source.tls = settings.peer_tls;
  }
  parts->source.read_timeout = kStreamReadTimeout;

  BinlogArchiverOptions options;
  options.node = settings.identity.hostname;
  options.ordinal = settings.identity.ordinal;
  options.primary = primary;
  options.seal_interval = std::chrono::milliseconds(config.archive.binlog_seal_interval_ms);
  options.seal_bytes = static_cast<uint64_t>(config.archive.binlog_seal_bytes);
  options.lease_timeout = std::chrono::seconds(config.archive.binlog_lease_timeout);

  Parts* p = parts.get();
  BinlogArchiverDeps deps;
  deps.lease_store = p->archive->store.get();
  deps.put_segment = [p](const binlog::BinlogSegment& segment) -> Result<std::string> {
    auto put = p->binlogs->Put(segment);
    if (!put) return Error(put.error());
    return put->key;
  };
  deps.newest_end_state = [p](const std::string& history) { return p->NewestEndState(history); };
  deps.primary_history = [p] { return p->History(); };
  deps.primary_binlog_state = [p] { return p->BinlogState(); };
  const uint32_t reader_id = BinlogReaderServerId(settings.identity.server_id);
  deps.open_stream = [p, reader_id](const std::string& connect_position) {
    db::BinlogStreamOptions o;
    o.server_id = reader_id;
    o.connect_state = connect_position;
    return db::OpenBinlogStream(p->source, o);
  };
  // Without a history argument: the archiver asks at the start of a chain, for the history it
  // is in; the seam takes the one it last read.
  deps.backup_position = [p]() -> Result<std::optional<std::string>> {
    auto history = p->History();
    if (!history) return Error(history.error());
    return p->ChainStartOfHistory(*history);
  };
  deps.request_backup = [p](std::function<void(const std::string&, const Status&)> done) {
    p->RequestBackup(std::move(done));
  };
  const double max_lag = static_cast<double>(config.replication.max_lag);
  deps.ready = [p, max_lag] {
    return replication::DecideReady(p->node.Current(), max_lag).ok;
  };
  parts->archiver =
      std::make_unique<BinlogArchiver>(options, std::move(deps), node.binlog_archive_status());
  parts->archiver->Start();
  Log()->info("event=binlog_archive_wired node={} cluster_id={} source={} reader_server_id={}",
              options.node, parts->cluster_id,
              primary ? "local socket" : fmt::format("{}:{}", p->source.host, p->source.port),
              reader_id);
  return std::unique_ptr<LiveBinlogArchiver>(new LiveBinlogArchiver(std::move(parts)));
}

}  // namespace replboot::daemon
