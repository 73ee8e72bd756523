#include "replboot/daemon/supervisor.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "replboot/base/log.h"

namespace replboot::daemon {
namespace {

constexpr int kForwardedSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

sigset_t HandledSet() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kForwardedSignals) sigaddset(&set, s);
  sigaddset(&set, SIGCHLD);
  return set;
}

std::string SignalName(int signo) {
  const char* abbrev = ::sigabbrev_np(signo);
  return abbrev ? fmt::format("SIG{}", abbrev) : fmt::format("signal{}", signo);
}

// mysqld treats SIGINT as a shutdown request only when started with --gdb; a
// Ctrl-C on `docker run -it` would otherwise always end in SIGKILL after the
// grace period. SIGTERM is what it understands as "shut down cleanly".
int SignalForMysqld(int signo) { return signo == SIGINT ? SIGTERM : signo; }

}  // namespace

int ExitCodeFor(const process::ExitStatus& status, bool stop_requested) {
  int code = status.ShellCode();
  if (stop_requested) return code;
  // Ended on its own: the pod must be restarted even when mysqld said "success".
  return code == 0 ? 1 : code;
}

int ExitCodeForStartupError(const Status& status, int stop_signal) {
  // A step that failed because replboot was asked to stop reports the stop, as a
  // shell reports a command killed by a signal.
  if (stop_signal != 0) return 128 + stop_signal;
  if (status.code() == StatusCode::kInvalidArgument) return 2;
  return 1;
}

bool IsStopSignal(int signo) { return signo == SIGTERM || signo == SIGINT || signo == SIGQUIT; }

Status Supervisor::BlockSignals() {
  sigset_t set = HandledSet();
  if (int rc = ::pthread_sigmask(SIG_BLOCK, &set, nullptr); rc != 0) {
    return ErrnoStatus(rc, "pthread_sigmask(SIG_BLOCK)");
  }
  // As tini: a closed client socket must not kill PID 1, and PID 1 must not be
  // stopped by terminal I/O. Spawn() resets these to the default in children.
  for (int s : {SIGPIPE, SIGTTIN, SIGTTOU}) {
    if (::signal(s, SIG_IGN) == SIG_ERR)
      return ErrnoStatus(errno, fmt::format("signal({}, SIG_IGN)", s));
  }
  return Status::Ok();
}

Supervisor::Supervisor(SupervisorOptions options) : options_(options) {}

void Supervisor::SetMainChild(pid_t pid) {
  std::lock_guard lock(mutex_);
  main_pid_ = pid;
  step_pid_ = 0;
  int stop = stop_signal_.load();
  if (stop != 0) {
    // The stop arrived between the worker's last check and the spawn: mysqld
    // gets it now, with the same grace period.
    ::kill(pid, SignalForMysqld(stop));
    kill_deadline_ = std::chrono::steady_clock::now() + options_.shutdown_grace;
    log::Get("daemon")->info("event=signal_forwarded signal={} pid={} late=true", SignalName(stop),
                             pid);
  }
}

void Supervisor::SetStepChild(pid_t pid) {
  std::lock_guard lock(mutex_);
  step_pid_ = pid;
  int stop = stop_signal_.load();
  if (pid > 0 && stop != 0) ::kill(-pid, SIGTERM);
}

std::optional<process::ExitStatus> Supervisor::MainExit() const {
  std::lock_guard lock(mutex_);
  return main_exit_;
}

bool Supervisor::SleepUnlessDone(std::chrono::milliseconds d) const {
  auto deadline = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < deadline) {
    if (Stopping() || MainExit()) return false;
    std::this_thread::sleep_for(std::min(d, std::chrono::milliseconds(20)));
  }
  return !(Stopping() || MainExit());
}

void Supervisor::BeginStop(int signo, const char* reason) {
  auto log = log::Get("daemon");
  int expected = 0;
  bool first = stop_signal_.compare_exchange_strong(expected, signo);
  if (first) stop_source_.request_stop();  // callbacks run here, on the signal thread: short
  std::lock_guard lock(mutex_);
  if (first) {
    log->info("event=stop_requested signal={} reason={} grace_s={:.1f}", SignalName(signo), reason,
              options_.shutdown_grace.count() / 1000.0);
  }
  if (main_pid_ > 0 && !main_exit_) {
    int forwarded = SignalForMysqld(signo);
    if (::kill(main_pid_, forwarded) != 0) {
      log->warn("event=signal_forward_failed signal={} pid={} error={}", SignalName(forwarded),
                main_pid_, log::Quote(std::strerror(errno)));
    } else {
      log->info("event=signal_forwarded signal={} pid={}", SignalName(forwarded), main_pid_);
    }
    if (!kill_deadline_)
      kill_deadline_ = std::chrono::steady_clock::now() + options_.shutdown_grace;
  } else if (step_pid_ > 0) {
    // The whole group: install-db is a script whose mariadbd --bootstrap would
    // otherwise go on writing into the datadir after the script died.
    ::kill(-step_pid_, SIGTERM);
    log->info("event=signal_forwarded signal=SIGTERM pgid={} step=true", step_pid_);
  }
}

void Supervisor::HandleSignal(int signo) {
  if (IsStopSignal(signo)) {
    BeginStop(signo, "signal");
    return;
  }
  auto log = log::Get("daemon");
  std::lock_guard lock(mutex_);
  if (main_pid_ > 0 && !main_exit_) {
    if (::kill(main_pid_, signo) != 0) {
      log->warn("event=signal_forward_failed signal={} pid={} error={}", SignalName(signo),
                main_pid_, log::Quote(std::strerror(errno)));
    } else {
      log->info("event=signal_forwarded signal={} pid={}", SignalName(signo), main_pid_);
    }
  } else {
    log->info("event=signal_ignored signal={} reason=\"mysqld not running\"", SignalName(signo));
  }
}

void Supervisor::ReapAndCheckMain() {
  auto log = log::Get("daemon");
  process::ReapChildren([&](pid_t pid, process::ExitStatus status) {
    log->info("event=reaped_orphan pid={} status={}", pid, log::Quote(status.ToString()));
  });
  pid_t main;
  {
    std::lock_guard lock(mutex_);
    if (main_exit_ || main_pid_ <= 0) return;
    main = main_pid_;
  }
  // The reaper above has already collected it if it ended: this does not block.
  auto status = process::Wait(main, std::chrono::milliseconds(0));
  if (status) {
    std::lock_guard lock(mutex_);
    if (restarting_ && stop_signal_.load() == 0) {
      // Stopped on purpose for a restart: the worker starts the next one.
      log->info("event=mysqld_exited_for_restart pid={} status={}", main,
                log::Quote(status->ToString()));
      main_pid_ = 0;
      restarting_ = false;
      kill_deadline_.reset();
      killed_ = false;
      return;
    }
    main_exit_ = *status;
  }
}

Status Supervisor::StopMainChildForRestart() {
  auto log = log::Get("daemon");
  {
    std::lock_guard lock(mutex_);
    if (main_pid_ <= 0 || main_exit_) {
      return Status(StatusCode::kInternal, "stop mysqld for a restart: mysqld is not running");
    }
    if (stop_signal_.load() != 0)
      return Status(StatusCode::kCancelled, "stop requested before mysqld was stopped");
    restarting_ = true;
    if (::kill(main_pid_, SIGTERM) != 0) {
      restarting_ = false;
      return ErrnoStatus(errno, fmt::format("stop mysqld (pid {}) for a restart", main_pid_));
    }
    kill_deadline_ = std::chrono::steady_clock::now() + options_.shutdown_grace;
    log->info("event=mysqld_stopping pid={} reason=restart grace_s={:.1f}", main_pid_,
              options_.shutdown_grace.count() / 1000.0);
  }
  // The signal loop reaps it (and SIGKILLs it when the grace has passed).
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (main_exit_ || stop_signal_.load() != 0) {
        return Status(StatusCode::kCancelled, "stop requested while mysqld stopped for a restart");
      }
      if (!restarting_) return Status::Ok();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void Supervisor::KillIfGraceExpired() {
  std::lock_guard lock(mutex_);
  if (!kill_deadline_ || killed_ || main_exit_ || main_pid_ <= 0) return;
  if (std::chrono::steady_clock::now() < *kill_deadline_) return;
  killed_ = true;
  if (::kill(main_pid_, SIGKILL) != 0) {
    log::Get("daemon")->error("event=mysqld_kill_failed pid={} error={}", main_pid_,
                              log::Quote(std::strerror(errno)));
    return;
  }
  log::Get("daemon")->warn(
      "event=mysqld_killed pid={} signal=SIGKILL reason=grace_expired grace_s={:.1f}", main_pid_,
      options_.shutdown_grace.count() / 1000.0);
}

int Supervisor::Run(const std::function<Status(Supervisor&)>& startup) {
  auto log = log::Get("daemon");
  process::EnableCentralReaper();
  // The signal loop below is the only caller of ReapChildren(): once it ends, a Wait() left
  // in central mode would wait for a hand-over nobody makes (the services' children after
  // the run, the next test's in one test binary), and orphans still coming to us as a
  // subreaper would stay zombies (keeping a stopped child's process group alive to kill(2)).
  // Both are handed back on every way out.
  struct HandBack {
    bool subreaper = false;
    ~HandBack() {
      if (subreaper) (void)::prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
      process::DisableCentralReaper();
    }
  } hand_back;
  if (::getpid() != 1) {
    // Orphans of mysqld's descendants then come to us instead of to the real init,
    // so the reaping below sees them as PID 1 would.
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
      log->warn("event=subreaper_failed error={}", log::Quote(std::strerror(errno)));
    } else {
      hand_back.subreaper = true;
    }
  }

  struct WorkerResult {
    std::mutex mutex;
    bool done = false;
    Status status;
  };
  auto result = std::make_shared<WorkerResult>();
  std::promise<void> finished;
  std::future<void> finished_future = finished.get_future();
  std::thread worker([this, &startup, result, p = std::move(finished)]() mutable {
    Status s = startup(*this);
    {
      std::lock_guard lock(result->mutex);
      result->done = true;
      result->status = s;
    }
    p.set_value();
  });

  const sigset_t set = HandledSet();
  std::optional<int> forced_code;  // set when startup failed: wins over mysqld's status
  bool worker_checked = false;
  auto started = std::chrono::steady_clock::time_point();
  int exit_code = 1;
  for (;;) {
    timespec ts;
    ts.tv_sec = options_.tick.count() / 1000;
    ts.tv_nsec = (options_.tick.count() % 1000) * 1000000L;
    siginfo_t info;
    int signo = ::sigtimedwait(&set, &info, &ts);
    if (signo < 0 && errno != EAGAIN && errno != EINTR) {
      log->error("event=sigtimedwait_failed error={}", log::Quote(std::strerror(errno)));
    }
    if (signo > 0 && signo != SIGCHLD) {
      if (IsStopSignal(signo) && started == std::chrono::steady_clock::time_point()) {
        started = std::chrono::steady_clock::now();
      }
      HandleSignal(signo);
    }
    // Every wake-up, not only on SIGCHLD: several exits can share one pending SIGCHLD.
    ReapAndCheckMain();
    KillIfGraceExpired();

    std::optional<process::ExitStatus> main_exit = MainExit();
    if (main_exit) {
      bool requested = Stopping();
      bool killed;
      {
        std::lock_guard lock(mutex_);
        killed = killed_;
      }
      exit_code = forced_code ? *forced_code : ExitCodeFor(*main_exit, requested);
      long elapsed_ms =
          started == std::chrono::steady_clock::time_point()
              ? 0
              : static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::steady_clock::now() - started)
                                      .count());
      if (requested || forced_code) {
        log->info(
            "event=mysqld_exited status={} requested=true killed={} stop_elapsed_ms={} "
            "exit_code={}",
            log::Quote(main_exit->ToString()), killed, elapsed_ms, exit_code);
      } else {
        log->error(
            "event=mysqld_exited status={} requested=false exit_code={} msg={}",
            log::Quote(main_exit->ToString()), exit_code,
            log::Quote(
                "mysqld ended without being asked to stop; exiting non-zero so the pod restarts"));
      }
      break;
    }

    bool done;
    Status worker_status;
    {
      std::lock_guard lock(result->mutex);
      done = result->done;
      worker_status = result->status;
    }
    if (done && !worker_checked) {
      worker_checked = true;
      pid_t main;
      {
        std::lock_guard lock(mutex_);
        main = main_pid_;
      }
      const bool cancelled_by_stop =
          stop_signal_.load() != 0 && worker_status.code() == StatusCode::kCancelled;
      if (!worker_status.ok() && stop_signal_.load() != 0 && main > 0) {
        // The worker gave up (or failed: its connection went away) because of the
        // stop that is already under way: mysqld's own shutdown decides the exit code.
        log->info("event=startup_cancelled error={}", log::Quote(worker_status.message()));
      } else if (!worker_status.ok()) {
        forced_code = ExitCodeForStartupError(worker_status, stop_signal_.load());
        if (cancelled_by_stop) {
          log->info("event=startup_cancelled error={}", log::Quote(worker_status.message()));
        } else {
          log->error("event=startup_failed error={}", log::Quote(worker_status.ToString()));
        }
        if (main <= 0) {
          exit_code = *forced_code;
          break;
        }
        // mysqld runs but replboot cannot do its job: stop it cleanly, then exit
        // with the startup error's code.
        BeginStop(SIGTERM, "startup_failed");
      } else if (main <= 0) {
        log->error("event=startup_failed error={}",
                   log::Quote("startup ended without starting mysqld"));
        exit_code = 1;
        break;
      }
    }
  }

  if (finished_future.wait_for(options_.worker_join_timeout) != std::future_status::ready) {
    // The worker is blocked in something without a deadline (a hook); exiting
    // is still right, since mysqld has ended and the pod must restart or stop.
    log->error("event=worker_stuck waited_ms={} exit_code={}", options_.worker_join_timeout.count(),
               exit_code);
    spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->flush(); });
    std::_Exit(exit_code);
  }
  worker.join();
  if (!worker_checked) {
    std::lock_guard lock(result->mutex);
    if (!result->status.ok()) {
      // mysqld ended while the worker was still starting it up: say why it gave up.
      log->info("event=startup_aborted error={}", log::Quote(result->status.message()));
    }
  }
  return exit_code;
}

}  // namespace replboot::daemon
