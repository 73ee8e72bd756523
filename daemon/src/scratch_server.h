// The scratch dir and the throwaway server of the restore test (restore_test.h) and of a
// point-in-time restore's replay (pitr_restore.h): a directory only this process uses (locked,
// marked), and a mysqld on it that ends with replboot.
#ifndef REPLBOOT_DAEMON_SCRATCH_SERVER_H_
#define REPLBOOT_DAEMON_SCRATCH_SERVER_H_

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stop_token>
#include <string>

#include "replboot/base/files.h"
#include "replboot/base/log.h"
#include "replboot/base/process.h"
#include "replboot/daemon/bootstrap.h"
#include "replboot/daemon/node_settings.h"
#include "replboot/daemon/restore_test.h"
#include "replboot/db/client.h"

namespace replboot::daemon {

// The last `lines` lines of `text`, on one line (" | " between them).
std::string TailLines(const std::string& text, size_t lines);

// The scratch dir, held: a lock on the directory itself (flock, not inherited by the
// server or the tools, which Spawn gives no descriptor) says a test is using it, so a test
// started meanwhile (the scheduler, a hand run) neither removes it nor restores into it.
class Scratch {
 public:
  ~Scratch() {
    if (fd_ >= 0) ::close(fd_);
  }
  // Removes a leftover (a killed run's), then makes it afresh, empty, locked and marked.
  Status Create(const std::string& path, const std::optional<OsUser>& owner,
                const std::string& backup_id, std::string marker_name = kScratchMarker,
                std::string what = "a restore test") {
    marker_ = std::move(marker_name);
    what_ = std::move(what);
    path_ = path;
    REPLBOOT_RETURN_STATUS_IF_ERROR(RemoveLeftover());
    auto parent = files::MakeDirs(files::ParentDir(path), 0755);
    if (!parent) return parent.error().WithContext("scratch dir's parent");
    ::close(*parent);
    if (::mkdir(path.c_str(), 0700) != 0) return ErrnoStatus(errno, "mkdir " + path);
    fd_ = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd_ < 0) return ErrnoStatus(errno, "open " + path);
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) return ErrnoStatus(errno, "flock " + path);
    // The server runs as mysqld's user and writes its socket, pid file and tmp files here.
    if (owner && ::fchown(fd_, owner->uid, owner->gid) != 0)
      return ErrnoStatus(errno, "chown " + path);
    nlohmann::json marker;
    marker["backup_id"] = backup_id;
    marker["pid"] = ::getpid();
    marker["started_at_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch()).count();
    return files::WriteFileAtomic(Join(marker_), marker.dump() + "\n", 0644);
  }
  Status Remove() {
    if (fd_ < 0) return Status::Ok();
    Status s = files::RemoveAll(path_);
    ::close(fd_);
    fd_ = -1;
    return s;
  }
  void Release() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  std::string Join(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  // Only what a restore test made goes: a dir holding the marker, or an empty one (killed
  // between mkdir and the marker). Anything else at that path is the operator's.
  Status RemoveLeftover() {
    struct stat st {};
    if (::lstat(path_.c_str(), &st) != 0) {
      if (errno == ENOENT) return Status::Ok();
      return ErrnoStatus(errno, "stat " + path_);
    }
    if (!S_ISDIR(st.st_mode)) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("scratch dir {} exists and is not a directory", path_));
    }
    auto empty = files::IsEmptyDir(path_);
    if (!empty) return empty.error();
    if (!*empty && ::access(Join(marker_).c_str(), F_OK) != 0) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("scratch dir {} exists and was not made by {} (no {}"
                                "); remove it or set archive.scratch_dir elsewhere",
                                path_, what_, marker_));
    }
    int fd = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(errno, "open " + path_);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      return Status(StatusCode::kUnavailable,
                    fmt::format("another {} is using scratch dir {}",
                                      what_.starts_with("a ") ? what_.substr(2) : what_, path_));
    }
    Status s = files::RemoveAll(path_);
    ::close(fd);
    // The restore test's event name, as its log has always had it; the replay's its own.
    if (s.ok()) {
      log::Get("archive")->info("event={}_leftover_removed dir={}",
                                marker_ == kScratchMarker ? "restore_test" : "pitr_scratch",
                                log::Quote(path_));
    }
    return s;
  }

  std::string path_;
  std::string marker_ = kScratchMarker;
  std::string what_ = "a restore test";
  int fd_ = -1;
};

// The throwaway server, ended when this goes out of scope (SIGKILL: what it wrote is
// deleted next, and a clean shutdown would only flush pages to a directory about to go).
class ScratchServer {
 public:
  ~ScratchServer() { Kill(); }
  Status Start(const NodeSettings& settings, const std::string& defaults_file) {
    process::SpawnOptions options;
    // The daemon's own command line for mysqld (bootstrap.h), with the scratch option file;
    // started as mysqld's user rather than with --user, which would drop the parent-death
    // signal that ends it with replboot.
    options.argv = MysqldArgv(settings.server_binary, defaults_file, std::nullopt, std::nullopt);
    options.env = process::ChildEnvironment();
    options.stdout_mode = process::Stdio::kNull;
    options.parent_death_signal = SIGKILL;
    if (settings.mysql_user) {
      options.run_as =
          process::SpawnOptions::User{settings.mysql_user->uid, settings.mysql_user->gid};
    }
    auto child = process::Spawn(options);
    if (!child) return child.error().WithContext("start " + settings.server_binary);
    pid_ = child->pid;
    return Status::Ok();
  }
  pid_t pid() const { return pid_.load(); }
  // From any thread (a stop request): ends a query that would otherwise run on.
  void Signal(int signo) const {
    if (pid_t p = pid_.load(); p > 0) ::kill(p, signo);
  }
  // Waits up to `d` for it to end: its status, or nullopt while it runs.
  Result<std::optional<process::ExitStatus>> WaitFor(std::chrono::milliseconds d) {
    auto status = process::Wait(pid_, d);
    if (status) {
      pid_ = -1;
      return std::optional<process::ExitStatus>(*status);
    }
    if (status.error().code() == StatusCode::kTimeout) return std::nullopt;
    return Error(status.error());
  }
  // A clean shutdown (--keep-scratch): SIGTERM, SIGKILL after `grace`.
  void Stop(std::chrono::seconds grace) {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    if (auto s = process::Wait(pid_, grace); s) {
      pid_ = -1;
      return;
    }
    Kill();
  }
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    (void)process::Wait(pid_, std::chrono::seconds(30));
    pid_ = -1;
  }

 private:
  std::atomic<pid_t> pid_{-1};
};

// Connects as root over `paths.socket` once the server accepts (SELECT 1 answers), polling
// every 250 ms; with `root_password` (a server that reads its grant tables: the password of
// the cluster's root account, as the daemon connects to its own server; empty for unix_socket
// or a server without grant tables): kUnavailable naming the exit and the end of its error log when the server
// ends first, kTimeout after `timeout`, kCancelled on `stop`.
Result<std::unique_ptr<db::Session>> ConnectScratchServer(ScratchServer& server,
                                                          const NodeSettings& settings,
                                                          const ScratchServerPaths& paths,
                                                          std::chrono::seconds timeout,
                                                          std::chrono::seconds read_timeout,
                                                          const std::stop_token& stop,
                                                          const std::string& root_password = {});

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_SCRATCH_SERVER_H_
