#include "replboot/base/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>

extern char** environ;

namespace replboot::process {
namespace {

std::atomic<bool> g_central_reaper{false};
std::mutex g_mutex;
std::condition_variable g_cv;
std::set<pid_t> g_ours;                  // spawned through Spawn(), not yet waited for
std::map<pid_t, ExitStatus> g_finished;  // reaped by ReapChildren(), not yet waited for

struct Pipe {
  int read_end = -1;
  int write_end = -1;
  Status Open() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
    read_end = fds[0];
    write_end = fds[1];
    return Status::Ok();
  }
  void Close() {
    if (read_end >= 0) ::close(read_end);
    if (write_end >= 0) ::close(write_end);
    read_end = write_end = -1;
  }
};

}  // namespace

ExitStatus ExitStatus::FromWaitStatus(int wstatus) {
  ExitStatus s;
  if (WIFEXITED(wstatus)) s.code = WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) s.signal = WTERMSIG(wstatus);
  return s;
}

std::string ExitStatus::ToString() const {
  if (signal != 0) return fmt::format("killed by signal {} ({})", signal, ::strsignal(signal));
  return fmt::format("exit code {}", code);
}

Result<Child> Spawn(const SpawnOptions& options) {
  if (options.argv.empty()) return Error(StatusCode::kInvalidArgument, "spawn: empty argv");
  Pipe in, out, err;
  auto cleanup = [&] {
    in.Close();
    out.Close();
    err.Close();
  };
  if (options.stdin_mode == Stdio::kPipe) REPLBOOT_RETURN_IF_ERROR(in.Open());
  if (options.stdout_fd < 0 && options.stdout_mode == Stdio::kPipe) {
    if (auto s = out.Open(); !s.ok()) {
      cleanup();
      return Error(s);
    }
  }
  if (options.stderr_mode == Stdio::kPipe) {
    if (auto s = err.Open(); !s.ok()) {
      cleanup();
      return Error(s);
    }
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  auto setup = [&](int target, Stdio mode, Pipe& pipe, bool child_reads) {
    if (mode == Stdio::kNull) {
      posix_spawn_file_actions_addopen(&actions, target, "/dev/null", child_reads ? O_RDONLY : O_WRONLY, 0);
    } else if (mode == Stdio::kPipe) {
      posix_spawn_file_actions_adddup2(&actions, child_reads ? pipe.read_end : pipe.write_end, target);
    }
  };
  setup(STDIN_FILENO, options.stdin_mode, in, true);
  if (options.stdout_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, options.stdout_fd, STDOUT_FILENO);
  } else {
    setup(STDOUT_FILENO, options.stdout_mode, out, false);
  }
  setup(STDERR_FILENO, options.stderr_mode, err, false);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty, all;
  sigemptyset(&empty);
  sigfillset(&all);
  // The supervisor blocks signals to handle them synchronously; a child must not
  // inherit that mask, nor any ignored disposition.
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (options.new_process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&attr, 0);
  }
  posix_spawnattr_setflags(&attr, flags);

  std::vector<char*> argv;
  for (auto& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : options.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  int rc;
  {
    // Registering under the lock means ReapChildren() can never see this pid as an orphan.
    std::lock_guard lock(g_mutex);
    rc = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
    if (rc == 0) g_ours.insert(pid);
  }
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    cleanup();
    return Error(ErrnoStatus(rc, "start " + options.argv[0]));
  }
  Child child;
  child.pid = pid;
  if (in.write_end >= 0) {
    child.stdin_fd = in.write_end;
    ::close(in.read_end);
  }
  if (out.read_end >= 0) {
    child.stdout_fd = out.read_end;
    ::close(out.write_end);
  }
  if (err.read_end >= 0) {
    child.stderr_fd = err.read_end;
    ::close(err.write_end);
  }
  return child;
}

void EnableCentralReaper() { g_central_reaper = true; }

void DisableCentralReaper() {
  {
    std::lock_guard lock(g_mutex);
    g_central_reaper = false;
  }
  g_cv.notify_all();
}

void ReapChildren(const std::function<void(pid_t, ExitStatus)>& on_orphan) {
  for (;;) {
    int wstatus = 0;
    pid_t pid = ::waitpid(-1, &wstatus, WNOHANG);
    if (pid <= 0) break;
    ExitStatus status = ExitStatus::FromWaitStatus(wstatus);
    bool ours;
    {
      std::lock_guard lock(g_mutex);
      ours = g_ours.count(pid) > 0;
      if (ours) g_finished[pid] = status;
    }
    if (ours) {
      g_cv.notify_all();
    } else if (on_orphan) {
      on_orphan(pid, status);
    }
  }
}

Result<ExitStatus> Wait(pid_t pid, std::optional<std::chrono::milliseconds> timeout) {
  auto deadline = timeout ? std::chrono::steady_clock::now() + *timeout
                          : std::chrono::steady_clock::time_point::max();
  if (g_central_reaper) {
    std::unique_lock lock(g_mutex);
    while (!g_finished.count(pid) && g_central_reaper) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return Error(StatusCode::kTimeout, "process {} still running", pid);
      }
      // Bounded waits: DisableCentralReaper() may hand reaping back to us at any moment.
      g_cv.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(100)));
    }
    if (auto it = g_finished.find(pid); it != g_finished.end()) {
      ExitStatus s = it->second;
      g_finished.erase(it);
      g_ours.erase(pid);
      return s;
    }
    // The reaper was switched off before it saw this child: wait for it directly below.
  }
  for (;;) {
    int wstatus = 0;
    pid_t rc = ::waitpid(pid, &wstatus, timeout ? WNOHANG : 0);
    if (rc == pid) {
      std::lock_guard lock(g_mutex);
      g_ours.erase(pid);
      return ExitStatus::FromWaitStatus(wstatus);
    }
    if (rc < 0 && errno != EINTR) return Error(ErrnoStatus(errno, fmt::format("waitpid {}", pid)));
    if (rc == 0) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return Error(StatusCode::kTimeout, "process {} still running", pid);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

Result<Captured> RunCapture(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                            std::optional<std::string> stdin_data, std::stop_token stop) {
  SpawnOptions options;
  options.argv = argv;
  options.env = env;
  options.stdin_mode = stdin_data ? Stdio::kPipe : Stdio::kNull;
  options.stdout_mode = Stdio::kPipe;
  options.stderr_mode = Stdio::kPipe;
  options.new_process_group = stop.stop_possible();  // so a stop ends all it started
  auto child = Spawn(options);
  if (!child) return Error(child.error());
  // A stop request ends the child's whole group: SIGTERM now, SIGKILL after kStopGrace. The
  // loop below then sees the pipes close and reaps the child as usual.
  std::optional<std::chrono::steady_clock::time_point> kill_at;
  const pid_t group = child->pid;
  auto check_stop = [&] {
    if (!stop.stop_requested()) return;
    auto now = std::chrono::steady_clock::now();
    if (!kill_at) {
      ::kill(-group, SIGTERM);
      kill_at = now + kStopGrace;
    } else if (now >= *kill_at) {
      ::kill(-group, SIGKILL);
    }
  };

  Captured captured;
  size_t written = 0;
  std::vector<pollfd> fds;
  int in_fd = child->stdin_fd;
  int out_fd = child->stdout_fd;
  int err_fd = child->stderr_fd;
  if (in_fd >= 0) ::fcntl(in_fd, F_SETFL, O_NONBLOCK);
  while (out_fd >= 0 || err_fd >= 0 || in_fd >= 0) {
    fds.clear();
    if (out_fd >= 0) fds.push_back({out_fd, POLLIN, 0});
    if (err_fd >= 0) fds.push_back({err_fd, POLLIN, 0});
    if (in_fd >= 0) fds.push_back({in_fd, POLLOUT, 0});
    check_stop();
    // Woken every 200 ms while a stop is possible, to notice it; else only by the child.
    if (::poll(fds.data(), fds.size(), stop.stop_possible() ? 200 : -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (auto& p : fds) {
      if (p.revents == 0) continue;
      if (p.fd == in_fd) {
        ssize_t n = ::write(in_fd, stdin_data->data() + written, stdin_data->size() - written);
        if (n > 0) written += static_cast<size_t>(n);
        if (n < 0 && errno != EAGAIN && errno != EINTR) written = stdin_data->size();
        if (written >= stdin_data->size()) {
          ::close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      char buf[8192];
      ssize_t n = ::read(p.fd, buf, sizeof buf);
      if (n > 0) {
        (p.fd == out_fd ? captured.out : captured.err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(p.fd);
        (p.fd == out_fd ? out_fd : err_fd) = -1;
      }
    }
  }
  auto status = Wait(child->pid, stop.stop_possible() ? std::optional(std::chrono::milliseconds(200))
                                                     : std::nullopt);
  while (!status && status.error().code() == StatusCode::kTimeout) {
    check_stop();  // the pipes closed, but the child has not ended yet
    status = Wait(child->pid, std::chrono::milliseconds(200));
  }
  if (!status) return Error(status.error());
  if (kill_at) {
    // What the child started (in its group) must be gone too before we report.
    const auto give_up = *kill_at + kStopGrace;
    while (::kill(-group, 0) == 0 && std::chrono::steady_clock::now() < give_up) {
      if (std::chrono::steady_clock::now() >= *kill_at) ::kill(-group, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return Error(StatusCode::kCancelled, "{} stopped by a stop request ({})", argv[0],
                 status->ToString());
  }
  captured.status = *status;
  return captured;
}

std::vector<std::string> ChildEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    if (entry.starts_with("REPLBOOT_") || entry.starts_with("MYSQL_PWD=")) continue;
    env.emplace_back(entry);
  }
  return env;
}

}  // namespace replboot::process
