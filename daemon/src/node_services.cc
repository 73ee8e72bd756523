#include "replboot/daemon/node_services.h"

#include <boost/asio/executor_work_guard.hpp>

#include "replboot/api/server.h"
#include "replboot/archive/schedule.h"
#include "replboot/base/log.h"
#include "replboot/clone/backup_server.h"
#include "replboot/daemon/backup_scheduler.h"
#include "replboot/daemon/backups.h"
#include "replboot/daemon/binlog_archiver_wiring.h"
#include "replboot/daemon/clone_step.h"
#include "replboot/daemon/pitr_restore.h"
#include "replboot/daemon/primary_recovery.h"
#include "replboot/daemon/replication_wiring.h"

namespace replboot::daemon {

namespace {

// The backup server's view in the HTTP API's terms.
replication::BackupServing BackupServingOf(const clone::BackupActivity& activity) {
  auto receivers = [](const std::vector<clone::BackupReceiverStatus>& list) {
    std::vector<replication::BackupServing::Receiver> out;
    out.reserve(list.size());
    for (const auto& r : list) {
      out.push_back({.run = r.run,
                     .name = r.name,
                     .peer = r.peer,
                     .state = r.state,
                     .bytes_sent = r.bytes_sent,
                     .wire_bytes_sent = r.wire_bytes_sent,
                     .compression = r.compression,
                     .reason = r.reason});
    }
    return out;
  };
  replication::BackupServing serving;
  serving.runs = activity.runs_started;
  serving.stream_bytes_sent = activity.stream_bytes_sent;
  serving.wire_bytes_sent = activity.wire_bytes_sent;
  serving.receivers_dropped = activity.receivers_dropped;
  serving.receivers_detached = activity.receivers_detached;
  serving.resumes = activity.resumes;
  serving.resent_bytes = activity.resent_bytes;
  serving.resume_spool_bytes = activity.spool_bytes;
  serving.resume_window_seconds = activity.resume_window_seconds;
  serving.receivers = receivers(activity.receivers);
  serving.ended = receivers(activity.ended);
  return serving;
}

}  // namespace

NodeServices::NodeServices() = default;

NodeServices::~NodeServices() { Stop(); }

BootstrapHooks NodeServices::Hooks() {
  BootstrapHooks hooks;
  hooks.on_start = [this](NodeContext& ctx) { return OnStart(ctx); };
  hooks.prepare_datadir = [this](NodeContext& ctx) { return PrepareDatadir(ctx); };
  hooks.recover_primary = [this](NodeContext& ctx) { return RecoverPrimaryDatadir(ctx); };
  hooks.after_ready = [this](NodeContext& ctx) { return AfterReady(ctx); };
  hooks.supervise = [this](NodeContext& ctx) { return Supervise(ctx); };
  return hooks;
}

Status NodeServices::OnStart(NodeContext& ctx) {
  // The HTTP server first: while the datadir is initialized or cloned, /status shows what is
  // happening and /health says why mysqld does not answer yet.
  auto node = StartNodeServer(*ctx.settings);
  if (!node) return node.error().WithContext("http");
  node_ = std::move(*node);
  // The backup server next, before the datadir is looked at: a primary that lost its volume
  // must hear from every peer, also from one still waiting for that primary to set up its
  // replication (a whole StatefulSet restarted at once), or being cloned. Until the node
  // has data its probes say so and it serves no backup; until it is ready it is no donor.
  return StartBackupServer(ctx);
}

Status NodeServices::StartBackupServer(NodeContext& ctx) {
  auto log = log::Get("daemon");
  // Every node serves backups, so the next replica can clone from its nearest lower peer.
  // Without a shared secret the endpoint would hand the data to anyone: it stays off, and
  // the node still runs (a single primary does not need it).
  auto server_options = ServerOptionsFor(*ctx.settings);
  if (!server_options) {
    log->error("event=backup_server_disabled error={}",
               log::Quote(server_options.error().message()));
    // Added to a replica's replication error, if any, not replacing it.
    node_->AddError("backup server disabled: " + server_options.error().message());
    backup_disabled_ = true;
    return Status::Ok();
  }
  api::Server* node_ptr = node_.get();
  server_options->on_backup_served = [node_ptr] { node_ptr->CountBackupServed(); };
  server_options->on_connection_refused = [node_ptr] { node_ptr->CountBackupConnectionRefused(); };
  // A donor is what /ready says it is (the poller's snapshot: no query per probe), and never
  // while the recovery watcher finds it diverged from the primary.
  const double max_lag = static_cast<double>(ctx.config().replication.max_lag);
  server_options->readiness = [node_ptr, max_lag] {
    const replication::Snapshot snapshot = node_ptr->Current();
    const replication::Decision ready = replication::DecideReady(snapshot, max_lag);
    return clone::ServerOptions::Readiness{.ready = ready.ok,
                                           .reason = ready.reason,
                                           .diverged = snapshot.recovery.diverged};
  };
  backup_server_ = std::make_unique<clone::BackupServer>(backup_io_, std::move(*server_options));
  if (Status s = backup_server_->Start(); !s.ok()) return s.WithContext("backup server");
  clone::BackupServer* server = backup_server_.get();
  node_->SetBackupSource([server] { return BackupServingOf(server->Activity()); });
  backup_thread_ = std::thread([this] {
    auto guard = boost::asio::make_work_guard(backup_io_);
    backup_io_.run();
  });
  return Status::Ok();
}

namespace {

// The clone's events as the HTTP view shows them.
clone::CloneProgressCallback ProgressInto(replication::CloneProgress* progress) {
  return [progress](const clone::CloneProgressEvent& event) {
    replication::CloneProgress::View view;
    view.phase = event.phase;
    view.donor = event.donor;
    view.bytes = event.bytes;
    view.total_bytes = event.estimated_bytes;
    view.bytes_per_second = event.bytes_per_second;
    view.eta_seconds = event.eta_seconds;
    view.stalled_seconds = event.stalled_seconds;
    view.attempts = event.attempt;
    view.donor_run = event.donor_run;
    view.donor_run_receivers = event.donor_run_receivers;
    view.compression = event.compression;
    // The wire bytes come with the stream's events; after it (preparing, committing, done)
    // the last count stays.
    view.wire_bytes = event.wire_bytes;
    if (event.wire_bytes == 0 && event.phase != "streaming" && event.phase != "discovering" &&
        event.phase != "failed") {
      view.wire_bytes = progress->Get().wire_bytes;
    }
    view.error = event.error;
    progress->Set(std::move(view));
  };
}

}  // namespace

Status NodeServices::PrepareDatadir(NodeContext& ctx) {
  if (!node_) return Status(StatusCode::kInternal, "prepare_datadir without on_start");
  auto step = CloneStep::Create(*ctx.settings);
  if (!step) return step.error().WithContext("clone");
  // A re-clone replaces the data (kept aside by the clone until the new one commits).
  REPLBOOT_RETURN_STATUS_IF_ERROR(
      (*step)->Run(ctx.stop, ProgressInto(&node_->clone_progress()), ctx.reclone));
  if (ctx.reclone && watcher_) {
    ctx.reclone = false;
    if (Status s = watcher_->Recloned(); !s.ok()) {
      // The clone is in place; only the guard's memory of it is lost: say so, carry on.
      log::Get("daemon")->error("event=reclone_record_failed error={}", log::Quote(s.ToString()));
      node_->AddError("re-clone record not written: " + s.message());
    }
  }
  return Status::Ok();
}

Result<bool> NodeServices::RecoverPrimaryDatadir(NodeContext& ctx) {
  if (!node_) return Error(StatusCode::kInternal, "recover_primary without on_start");
  RecoveryOptions options;
  options.recover_wait = std::chrono::seconds(ctx.config().bootstrap.recover_wait);
  replication::BootstrapStatus* status = &node_->bootstrap_status();
  if (!ctx.config().archive.store.empty()) {
    const NodeSettings* settings = ctx.settings;
    auto progress = ProgressInto(&node_->clone_progress());
    options.restore_from_store =
        [settings, progress](std::stop_token stop) -> Result<std::optional<std::string>> {
      auto archive = OpenArchive(*settings, stop);
      if (!archive) return Error(archive.error());
      const std::string& cluster = settings->config.archive.source_cluster;
      // Asked alone first: only "no complete backup" (kNotFound) means a new cluster. The same
      // code from anything later (a missing object, a segment) is a failure, never "empty".
      auto newest = ChooseBackup(**archive, "latest", cluster);
      if (!newest) {
        if (newest.error().code() == StatusCode::kNotFound) return std::nullopt;
        return Error(newest.error());
      }
      // restore.target ("latest" by default: everything archived), as `replboot restore
      // --time/--gtid` plans it (pitr_restore.h): the newest backup alone when no binlog is
      // archived; a target outside the restorable range is refused, naming the range.
      const archive::RestoreTarget& target = settings->restore_target;
      auto view = LoadArchiveView(*settings, **archive, cluster, "");
      if (!view) return Error(view.error());
      auto plan = PlanStoreRestore(*view, target);
      if (!plan) return Error(plan.error().WithContext("restore.target"));
      log::Get("archive")->info("event=primary_store_restore_plan target={} plan={}",
                                log::Quote(target.text), log::Quote(plan->Describe()));
      PitrOptions restore;
      restore.target = target;
      restore.datadir = settings->config.mysql.datadir;
      restore.as_primary = true;
      restore.stop = stop;
      restore.on_progress = progress;
      auto report = RestoreFromStore(*settings, **archive, *view, *plan, restore);
      if (!report) return Error(report.error());
      if (!report->point_in_time) {
        return fmt::format("backup {} (GTID {}); no binlog segment archived", report->backup_id,
                           report->gtid_state.empty() ? "-" : report->gtid_state);
      }
      return fmt::format(
          "backup {} + {} archived transactions to {} (GTID state {}); new history {}{}",
          report->backup_id, report->transactions, target.text,
          report->gtid_state.empty() ? "-" : report->gtid_state, report->new_history,
          report->stopped_by_gap.empty() ? ""
                                         : "; the archive ends early: " + report->stopped_by_gap);
    };
  }
  return RecoverPrimary(
      *ctx.settings, options, ctx.stop,
      [status](const RecoveryView& view) { status->Set(view); },
      ProgressInto(&node_->clone_progress()));
}

Result<bool> NodeServices::Supervise(NodeContext& ctx) {
  if (ctx.identity().role != conf::Role::kReplica || !node_) return false;
  if (!watcher_) {
    auto options = RecoveryWatcherOptionsFor(*ctx.settings);
    if (!options) return Error(options.error().WithContext("recovery watcher"));
    auto watcher = RecoveryWatcher::Create(std::move(*options), *node_);
    if (!watcher) return Error(watcher.error());
    watcher_ = std::move(*watcher);
  }
  return watcher_->Watch(*ctx.supervisor);
}

Status NodeServices::AfterReady(NodeContext& ctx) {
  auto log = log::Get("daemon");
  // Replication first: a primary that cannot create its accounts is not a working primary
  // (replicas could neither clone nor replicate), so that error stops the node.
  if (!node_) return Status(StatusCode::kInternal, "after_ready without on_start");
  // A primary recovered from a peer's clone takes over its history before anything else
  // writes (users, heartbeat): replicas then continue from it without a re-clone.
  if (ctx.identity().role == conf::Role::kPrimary) {
    if (Status s = FinishPromotion(*ctx.settings); !s.ok()) return s.WithContext("promotion");
  }
  if (Status s =
          FinishReplicationSetup(*node_, *ctx.settings);
      !s.ok()) {
    return s.WithContext("replication");
  }
  StartBackupScheduler(ctx);
  StartBinlogArchiver(ctx);
  return Status::Ok();
}

Result<clone::Endpoint> NodeServices::OwnBackupEndpoint(NodeContext& ctx) {
  if (!backup_server_) {
    return Error(StatusCode::kUnavailable,
                 "this node's backup server is off (no backup.secret)");
  }
  auto listen = ListenEndpoint(ctx.config().backup.listen, "backup.listen");
  if (!listen) return Error(listen.error());
  auto address = listen->address();
  if (address.is_unspecified()) {
    address = address.is_v6() ? boost::asio::ip::address(boost::asio::ip::address_v6::loopback())
                              : boost::asio::ip::address(boost::asio::ip::address_v4::loopback());
  }
  return clone::Endpoint(address, backup_server_->port());
}

void NodeServices::StartBackupScheduler(NodeContext& ctx) {
  // Once per run, on every node, once mysqld is ready (after_ready runs again after a
  // re-clone: the scheduler is already there, and its turns wait while the node is not ready).
  if (scheduler_) return;
  const auto& a = ctx.config().archive;
  auto schedule = archive::ParseSchedule(a.schedule);
  if (a.store.empty() || !schedule || schedule->kind == archive::Schedule::Kind::kOff) return;
  auto log = log::Get("archive");
  // Scheduled backups stream from this node's own backup server, which needs backup.secret.
  auto from = OwnBackupEndpoint(ctx);
  if (!from) {
    log->error("event=backup_schedule_disabled error={}", log::Quote(from.error().message()));
    node_->AddError("scheduled backups disabled: " + from.error().message());
    return;
  }
  auto scheduler = BackupScheduler::Create(*ctx.settings, *from, *node_);
  if (!scheduler) {
    log->error("event=backup_schedule_disabled error={}",
               log::Quote(scheduler.error().message()));
    node_->AddError("scheduled backups disabled: " + scheduler.error().message());
    return;
  }
  scheduler_ = std::move(*scheduler);
  scheduler_->Start();
}

void NodeServices::StartBinlogArchiver(NodeContext& ctx) {
  // Like the scheduler: once per run, on every node; the lease picks the one that archives.
  if (binlog_archiver_ || !ctx.config().archive.binlog) return;
  auto log = log::Get("binlog");
  std::optional<clone::Endpoint> from;
  if (auto own = OwnBackupEndpoint(ctx)) {
    from = *own;
  } else {
    // The archive still runs; a gap is then reported without the backup that would start a
    // new chain.
    log->warn("event=binlog_gap_backups_disabled reason={}", log::Quote(own.error().message()));
  }
  auto archiver = LiveBinlogArchiver::Start(*ctx.settings, *node_, from);
  if (!archiver) {
    log->error("event=binlog_archive_disabled error={}", log::Quote(archiver.error().message()));
    node_->AddError("binlog archive disabled: " + archiver.error().message());
    return;
  }
  binlog_archiver_ = std::move(*archiver);
}

void NodeServices::Stop() {
  // The scheduler and the archiver first: a backup either is taking streams from the backup
  // server below.
  if (scheduler_) scheduler_->Stop();
  scheduler_.reset();
  if (binlog_archiver_) binlog_archiver_->Stop();
  binlog_archiver_.reset();
  if (node_) node_->SetBackupSource({});  // before the backup server goes
  if (backup_server_) backup_server_->Stop();
  backup_io_.stop();
  if (backup_thread_.joinable()) backup_thread_.join();
  backup_server_.reset();
  if (node_) node_->Stop();
  node_.reset();
}

}  // namespace replboot::daemon
