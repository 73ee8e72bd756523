#include "replboot/base/process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "replboot/base/files.h"

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

// The one thread that forks children with a parent-death signal (SpawnOptions). The kernel
// sends that signal when the thread that forked the child ends: mysqld is started from the
// supervisor's start-up thread and a backup's tool from a connection's thread, and both threads
// may end while the child must live on. This thread never ends before the process does.
class ForkThread {
 public:
  static ForkThread& Instance() {
    // Never destroyed: the thread must outlive every static destructor.
    static ForkThread* instance = new ForkThread;
    return *instance;
  }

  // Runs `job` on the fork thread and returns what it returned.
  int Run(const std::function<int()>& job) {
    Job j{&job};
    std::unique_lock lock(mutex_);
    queue_.push_back(&j);
    cv_.notify_all();
    cv_.wait(lock, [&] { return j.done; });
    return j.result;
  }

 private:
  struct Job {
    const std::function<int()>* fn;
    int result = 0;
    bool done = false;
  };

  ForkThread() {
    // Every signal blocked in this thread: the supervisor waits for signals in its own thread,
    // and a signal delivered here instead would be lost (or kill the process).
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    std::thread([this] { Loop(); }).detach();
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }

  void Loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      cv_.wait(lock, [&] { return !queue_.empty(); });
      Job* job = queue_.front();
      queue_.pop_front();
      lock.unlock();
      int result = (*job->fn)();
      lock.lock();
      job->result = result;
      job->done = true;
      cv_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Job*> queue_;
};

// argv[0] as posix_spawnp finds it: as is when it holds a '/', else the first executable
// regular file of that name in this process's PATH.
Result<std::string> FindExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = ::getenv("PATH");
  std::string_view dirs = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    size_t colon = dirs.find(':');
    std::string_view dir = dirs.substr(0, colon);
    std::string candidate = dir.empty() ? name : std::string(dir) + "/" + name;
    struct stat st;
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    if (colon == std::string_view::npos) break;
    dirs.remove_prefix(colon + 1);
  }
  return Error(ErrnoStatus(ENOENT, "start " + name));
}

// What the forked child does before exec, prepared by the parent: after fork() in a
// threaded process the child may only make async-signal-safe calls.
struct ExecPlan {
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  int death_signal = 0;
  pid_t parent = -1;
  bool change_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  bool new_process_group = false;
  int nice = 0;
  int ioprio = -1;  // ioprio_set(2)'s value, or -1 to keep the parent's
  int stdin_dup = -1, stdout_dup = -1, stderr_dup = -1;  // descriptor to dup2 onto 0/1/2
  bool stdin_null = false, stdout_null = false, stderr_null = false;
  // The child writes errno here when it cannot exec (O_CLOEXEC: closed by a successful exec).
  int report_fd = -1;
};

// The child's end when it cannot exec: errno to the parent, exit 127.
[[noreturn]] void ChildFailed(int report_fd) {
  int e = errno;
  [[maybe_unused]] ssize_t n = ::write(report_fd, &e, sizeof e);
  ::_exit(127);
}

[[noreturn]] void ChildAfterFork(const ExecPlan& plan) {
  auto fail = [&] { ChildFailed(plan.report_fd); };
  // The user first: changing it clears the parent-death signal. Groups before the user,
  // while we may still change them.
  if (plan.change_user) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(plan.gid) != 0 || ::setuid(plan.uid) != 0)
      fail();
  }
  // Set before anything else, then checked: replboot may have died before the prctl.
  if (::prctl(PR_SET_PDEATHSIG, plan.death_signal) != 0) fail();
  if (::getppid() != plan.parent) ::_exit(127);
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);  // KILL/STOP refuse: fine
  sigset_t empty;
  sigemptyset(&empty);
  if (::sigprocmask(SIG_SETMASK, &empty, nullptr) != 0) fail();
  if (plan.new_process_group && ::setpgid(0, 0) != 0) fail();
  if (plan.nice > 0 && ::setpriority(PRIO_PROCESS, 0, plan.nice) != 0) fail();
  if (plan.ioprio >= 0 && ::syscall(SYS_ioprio_set, /*IOPRIO_WHO_PROCESS*/ 1, 0, plan.ioprio) != 0)
    fail();
  auto place = [&](int target, int dup, bool null, int null_flags) {
    if (null) {
      int fd = ::open("/dev/null", null_flags);
      if (fd < 0) fail();
      if (fd != target && (::dup2(fd, target) < 0 || ::close(fd) != 0)) fail();
    } else if (dup >= 0 && ::dup2(dup, target) < 0) {
      fail();
    }
  };
  place(STDIN_FILENO, plan.stdin_dup, plan.stdin_null, O_RDONLY);
  place(STDOUT_FILENO, plan.stdout_dup, plan.stdout_null, O_WRONLY);
  place(STDERR_FILENO, plan.stderr_dup, plan.stderr_null, O_WRONLY);
  // Nothing but 0, 1 and 2 crosses the exec (see Spawn in process.h). CLOEXEC rather than
  // closing: report_fd must stay usable until the exec succeeds.
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    rlimit limit{};
    int max_fd = ::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
                     ? static_cast<int>(limit.rlim_cur)
                     : 65536;
    for (int fd = 3; fd < max_fd; ++fd) (void)::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  ::execve(plan.path, plan.argv, plan.envp);
  ChildFailed(plan.report_fd);
}

// Forks on the fork thread and execs `plan` in the child; 0 and the pid, or an errno (the
// child's, when it could not exec, after it has been reaped).
int ForkExec(ExecPlan plan, pid_t* pid) {
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return errno;
  plan.report_fd = report[1];
  int rc = ForkThread::Instance().Run([&]() -> int {
    // Registering under the lock means ReapChildren() can never see this pid as an orphan.
    std::lock_guard lock(g_mutex);
    pid_t forked = ::fork();
    if (forked == 0) ChildAfterFork(plan);
    if (forked < 0) return errno;
    g_ours.insert(forked);
    *pid = forked;
    return 0;
  });
  ::close(report[1]);
  if (rc == 0) {
    int child_errno = 0;
    ssize_t n;
    do {
      n = ::read(report[0], &child_errno, sizeof child_errno);
    } while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(sizeof child_errno)) {
      rc = child_errno;
      (void)Wait(*pid);  // it has exited with 127
    }
  }
  ::close(report[0]);
  return rc;
}

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
  if (options.run_as && options.parent_death_signal == 0)
    return Error(StatusCode::kInvalidArgument, "spawn: run_as needs a parent_death_signal");
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

  std::vector<char*> argv;
  for (auto& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : options.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  auto adopt = [&](pid_t pid) {
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
  };

  // posix_spawn can set neither the parent-death signal nor priorities: those children are
  // forked (on the fork thread) and prepared by ChildAfterFork.
  if (options.parent_death_signal != 0 || options.nice > 0 ||
      options.io_priority != SpawnOptions::IoPriority::kInherit) {
    auto path = FindExecutable(options.argv[0]);
    if (!path) {
      cleanup();
      return Error(path.error());
    }
    ExecPlan plan;
    plan.path = path->c_str();
    plan.argv = argv.data();
    plan.envp = envp.data();
    plan.death_signal = options.parent_death_signal;
    plan.parent = ::getpid();
    if (options.run_as) {
      plan.change_user = true;
      plan.uid = options.run_as->uid;
      plan.gid = options.run_as->gid;
    }
    plan.new_process_group = options.new_process_group;
    plan.nice = std::clamp(options.nice, 0, 19);
    // IOPRIO_PRIO_VALUE(class, data) = class << 13 | data: best-effort (2) level 7, idle (3).
    plan.ioprio = options.io_priority == SpawnOptions::IoPriority::kBestEffortLowest ? (2 << 13) | 7
                  : options.io_priority == SpawnOptions::IoPriority::kIdle         ? (3 << 13)
                                                                                   : -1;
    plan.stdin_null = options.stdin_mode == Stdio::kNull;
    plan.stdin_dup = options.stdin_mode == Stdio::kPipe ? in.read_end : -1;
    if (options.stdout_fd >= 0) {
      plan.stdout_dup = options.stdout_fd;
    } else {
      plan.stdout_null = options.stdout_mode == Stdio::kNull;
      plan.stdout_dup = options.stdout_mode == Stdio::kPipe ? out.write_end : -1;
    }
    plan.stderr_null = options.stderr_mode == Stdio::kNull;
    plan.stderr_dup = options.stderr_mode == Stdio::kPipe ? err.write_end : -1;
    pid_t pid = -1;
    if (int rc = ForkExec(plan, &pid); rc != 0) {
      cleanup();
      return Error(ErrnoStatus(rc, "start " + options.argv[0]));
    }
    return adopt(pid);
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
  // Last, after the dup2s onto 0/1/2: nothing else crosses the exec (see Spawn in process.h).
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);

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
  return adopt(pid);
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
  options.parent_death_signal = SIGKILL;
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
    // AWS_*: the object store's credentials (AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) and
    // anything else that would point a child's AWS client at them.
    if (entry.starts_with("REPLBOOT_") || entry.starts_with("MYSQL_PWD=") ||
        entry.starts_with("AWS_")) {
      continue;
    }
    env.emplace_back(entry);
  }
  return env;
}

std::optional<int> CgroupQuotaCpus(std::string_view cpu_max) {
  while (!cpu_max.empty() && (cpu_max.back() == '\n' || cpu_max.back() == ' ')) cpu_max.remove_suffix(1);
  const size_t space = cpu_max.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  auto number = [](std::string_view text) -> std::optional<int64_t> {
    int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value <= 0) return std::nullopt;
    return value;
  };
  auto quota = number(cpu_max.substr(0, space));  // "max" does not parse: no quota
  auto period = number(cpu_max.substr(space + 1));
  if (!quota || !period) return std::nullopt;
  return static_cast<int>(std::min<int64_t>((*quota + *period - 1) / *period, 1 << 16));
}

int UsableCpus() {
  int cpus = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
  if (cpus <= 0) cpus = static_cast<int>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
  if (auto text = files::ReadFile("/sys/fs/cgroup/cpu.max")) {
    if (auto quota = CgroupQuotaCpus(*text)) cpus = std::min(cpus, *quota);
  }
  return std::max(cpus, 1);
}

}  // namespace replboot::process
