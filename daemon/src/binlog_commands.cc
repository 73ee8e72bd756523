// `replboot binlog archive-file|list`: the binlog archive of [archive] by hand. archive-file
// puts a server's existing binlog files into the archive (segments of whole transactions,
// sealed like the live archiver's, continuing the history's newest segment); list shows a
// history's chain: segments, gaps, the restorable range.
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "archive_command.h"
#include "replboot/archive/binlog_archive.h"
#include "replboot/archive/histories.h"
#include "replboot/archive/pitr.h"
#include "replboot/base/exit_code.h"
#include "replboot/base/files.h"
#include "replboot/base/log.h"
#include "replboot/binlog/gtid.h"
#include "replboot/conf/cli_flags.h"
#include "replboot/daemon/backups.h"
#include "replboot/daemon/commands.h"
#include "replboot/daemon/node_settings.h"
#include "replboot/daemon/pitr_restore.h"

namespace replboot::daemon {
namespace {

namespace ar = archive;

// A binlog file is at most max_binlog_size (1 GiB) plus its last transaction.
constexpr uint64_t kMaxBinlogFileBytes = 4ull << 30;



std::string Time(int64_t seconds) { return seconds > 0 ? ar::FormatTime(seconds) : "-"; }

}  // namespace

void AddBinlogCommands(CLI::App& app) {
  CLI::App* binlog = app.add_subcommand(
      "binlog", "The binlog archive in the store of [archive]: archive binlog files, list");
  binlog->require_subcommand(1);
  {
    auto flags = std::make_shared<conf::ConfigFlags>();
    auto files_in = std::make_shared<std::vector<std::string>>();
    auto cluster = std::make_shared<std::string>();
    auto history = std::make_shared<std::string>();
    auto segment_mb = std::make_shared<int>(16);
    CLI::App* cmd = binlog->add_subcommand(
        "archive-file",
        "Put binlog files (a server's mariadb-bin.000042 …, oldest first) into the archive as "
        "segments, after what the history holds already");
    conf::AddConfigFlags(cmd, flags.get());
    cmd->add_option("files", *files_in, "binlog files, in order")->required();
    cmd->add_option("--cluster", *cluster,
                    "the cluster id (default: that of the store's newest backup, "
                    "archive.source_cluster when set)");
    cmd->add_option("--history", *history, "the history (default the cluster's newest)");
    cmd->add_option("--segment-mb", *segment_mb, "binlog bytes per segment, MiB (1..64)")
        ->check(CLI::Range(1, 64));
    cmd->callback([flags, files_in, cluster, history, segment_mb] {
      auto opened = OpenArchiveCommand(*flags, /*needs_flavour=*/false);
      if (!opened) return;
      auto& archive = *opened->archive;
      std::string cluster_id = *cluster;
      if (cluster_id.empty()) {
        auto newest = ChooseBackup(archive, "latest", opened->settings.config.archive.source_cluster);
        if (!newest) return FailCommand("binlog_archive_failed", newest.error().WithContext(
                                     "the cluster id (or give --cluster)"));
        cluster_id = newest->cluster_id;
      }
      auto root = ar::RootHistoryId(cluster_id);
      if (!root) return FailCommand("binlog_archive_failed", root.error());
      std::string h = *history;
      if (h.empty()) {
        auto records = ar::ListHistories(*archive.store, archive.key, cluster_id);
        if (!records) return FailCommand("binlog_archive_failed", records.error());
        h = records->empty() ? *root : records->back().id;
      }
      if (!ar::IsHistoryId(h)) {
        return FailCommand("binlog_archive_failed",
                    Status(StatusCode::kInvalidArgument, fmt::format("\"{}\" is not a history id", h)));
      }
      ar::BinlogArchive binlogs(*archive.store, archive.key, cluster_id);
      auto newest = binlogs.Newest(h);
      if (!newest) return FailCommand("binlog_archive_failed", newest.error());
      binlog::GtidPosition at;
      if (*newest) at = *binlog::ParsePosition((*newest)->end_state);
      uint64_t segments = 0, transactions = 0;
      for (const auto& path : *files_in) {
        std::error_code ec;
        const uintmax_t size = std::filesystem::file_size(path, ec);
        if (ec) {
          return FailCommand("binlog_archive_failed",
                      Status(StatusCode::kNotFound, fmt::format("{}: {}", path, ec.message())));
        }
        if (size > kMaxBinlogFileBytes) {
          return FailCommand("binlog_archive_failed",
                      Status(StatusCode::kInvalidArgument,
                             fmt::format("{} is {} bytes, more than a binlog file holds", path,
                                         size)));
        }
        auto content = files::ReadFile(path);
        if (!content) return FailCommand("binlog_archive_failed", content.error());
        ar::CutOptions options;
        options.history = h;
        options.max_segment_bytes = static_cast<uint64_t>(*segment_mb) << 20;
        options.skip = at;
        auto cut = ar::CutBinlogFile(
            std::span(reinterpret_cast<const uint8_t*>(content->data()), content->size()),
            "binlog file " + path, options);
        if (!cut) return FailCommand("binlog_archive_failed", cut.error());
        for (const auto& segment : *cut) {
          auto start = binlog::ParsePosition(segment.start_state);
          if (start && !binlog::PositionCovers(at, *start)) {
            log::Get("archive")->warn(
                "event=binlog_archive_gap history={} archived_to={} file={} starts_at={}", h,
                log::Quote(binlog::PositionToString(at)), log::Quote(path),
                log::Quote(binlog::PositionToString(*start)));
          }
          auto put = binlogs.Put(segment);
          if (!put) return FailCommand("binlog_archive_failed", put.error());
          at = *binlog::ParsePosition(put->end_state);
          ++segments;
          transactions += put->transactions;
          std::cout << put->key << "\n";
        }
      }
      log::Get("archive")->info("event=binlog_archived history={} segments={} transactions={} "
                                "end={}",
                                h, segments, transactions, log::Quote(binlog::PositionToString(at)));
      cli::ExitCode() = cli::kExitOk;
    });
  }
  {
    auto flags = std::make_shared<conf::ConfigFlags>();
    auto history = std::make_shared<std::string>();
    auto cluster = std::make_shared<std::string>();
    auto json = std::make_shared<bool>(false);
    CLI::App* cmd = binlog->add_subcommand(
        "list", "A history's chain: its segments (and its ancestors' up to the branch), gaps, "
                "the restorable range");
    conf::AddConfigFlags(cmd, flags.get());
    cmd->add_option("--history", *history, "the history (default the cluster's newest)");
    cmd->add_option("--cluster", *cluster, "the cluster (default as `restore`)");
    cmd->add_flag("--json", *json, "one JSON object instead of text");
    cmd->callback([flags, history, cluster, json] {
      auto opened = OpenArchiveCommand(*flags, /*needs_flavour=*/false);
      if (!opened) return;
      auto view = LoadArchiveView(opened->settings, *opened->archive, *cluster, *history);
      if (!view) return FailCommand("binlog_list_failed", view.error());
      const auto report = ar::CheckChain(view->chain, view->backups);
      if (*json) {
        nlohmann::json out;
        out["cluster_id"] = view->cluster_id;
        out["history"] = view->history;
        out["histories"] = nlohmann::json::array();
        out["histories"].push_back({{"id", view->root}, {"parent", ""}});
        for (const auto& r : view->histories) {
          out["histories"].push_back({{"id", r.id},
                                      {"parent", r.parent},
                                      {"branch_state", r.branch_state},
                                      {"backup_id", r.backup_id},
                                      {"target", r.target},
                                      {"created_at_ms", r.created_at_ms}});
        }
        out["segments"] = nlohmann::json::array();
        for (const auto& phase : view->chain) {
          for (const auto& s : phase.segments) {
            out["segments"].push_back({{"key", s.key},
                                       {"history", s.history},
                                       {"start", s.start_state},
                                       {"end", s.end_state},
                                       {"first_gtid", s.first_gtid},
                                       {"last_gtid", s.last_gtid},
                                       {"first_commit", Time(s.first_commit_time)},
                                       {"last_commit", Time(s.last_commit_time)},
                                       {"transactions", s.transactions},
                                       {"stored_bytes", s.stored_bytes}});
          }
        }
        out["ranges"] = nlohmann::json::array();
        for (const auto& r : report.ranges) {
          out["ranges"].push_back({{"from_backup", r.from_backup},
                                   {"from_time", Time(r.from_time)},
                                   {"from_gtid", r.from_state},
                                   {"to_time", Time(r.to_time)},
                                   {"to_gtid", r.to_state}});
        }
        out["gaps"] = nlohmann::json::array();
        for (const auto& g : report.gaps) {
          out["gaps"].push_back({{"history", g.history},
                                 {"after_gtid", g.after_state},
                                 {"after_time", Time(g.after_time)},
                                 {"before_gtid", g.before_state},
                                 {"before_time", Time(g.before_time)},
                                 {"before_key", g.before_key},
                                 {"text", g.Describe()}});
        }
        std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      } else {
        for (const auto& phase : view->chain) {
          std::cout << fmt::format("history {}{}: {} segments\n", phase.history,
                                   phase.cap ? " (up to " + binlog::PositionToString(*phase.cap) + ")"
                                             : "",
                                   phase.segments.size());
          for (const auto& s : phase.segments) {
            std::cout << fmt::format("  {} .. {}  {} .. {}  {} transactions  {} B\n",
                                     s.first_gtid, s.last_gtid, Time(s.first_commit_time),
                                     Time(s.last_commit_time), s.transactions, s.stored_bytes);
          }
        }
        std::cout << report.Describe() << "\n";
      }
      cli::ExitCode() = cli::kExitOk;
    });
  }
}

}  // namespace replboot::daemon
