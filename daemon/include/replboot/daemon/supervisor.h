// The PID-1 side of `replboot run`, done tini's way: every handled signal is
// blocked in every thread and taken synchronously with sigtimedwait on the main
// thread, which forwards it to mysqld, reaps every child (also re-parented
// grandchildren) and ends with mysqld's status.
//
// Why a worker thread: bootstrap steps (install-db, waiting for the first
// connection, the after-ready hooks) block, while signals and SIGCHLD must be
// handled at any moment, and with the central reaper (base/process.h) only the
// signal loop calls waitpid; process::Wait() in the worker waits for it.
#ifndef REPLBOOT_DAEMON_SUPERVISOR_H_
#define REPLBOOT_DAEMON_SUPERVISOR_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>

#include "replboot/base/process.h"
#include "replboot/base/status.h"

namespace replboot::daemon {

// What replboot exits with once mysqld has ended.
//  - replboot asked it to stop (SIGTERM/SIGINT/SIGQUIT): mysqld's status as a shell
//    code (0 for a clean shutdown, 137 when the grace period ran out and it was SIGKILLed);
//  - it ended on its own: never 0, so the orchestrator restarts the pod: its exit
//    code, 128 + signal, or 1 when it exited 0.
int ExitCodeFor(const process::ExitStatus& status, bool stop_requested);

// The exit code for a bootstrap step that failed before or while mysqld ran:
// 2 for a configuration problem (as `replboot config` uses), 128 + the stop
// signal when the step was cancelled by a stop request, else 1.
int ExitCodeForStartupError(const Status& status, int stop_signal);

// Signals that ask replboot to stop: forwarded, then SIGKILL after the grace period.
bool IsStopSignal(int signo);

struct SupervisorOptions {
  std::chrono::milliseconds shutdown_grace{std::chrono::seconds(25)};
  // How often the loop wakes up without a signal to check the grace deadline and
  // the worker. Short enough to keep shutdown timing precise to a tenth of a second.
  std::chrono::milliseconds tick{100};
  // How long to wait for the worker thread to notice the end before exiting without it.
  std::chrono::milliseconds worker_join_timeout{std::chrono::seconds(15)};
};

class Supervisor {
 public:
  // Blocks the handled signals (SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
  // SIGCHLD) in the calling thread and ignores SIGPIPE/SIGTTIN/SIGTTOU. Must run
  // on the main thread before any thread exists, so every thread inherits the
  // mask and no signal is delivered asynchronously anywhere. Children get a clean
  // mask from process::Spawn().
  static Status BlockSignals();

  explicit Supervisor(SupervisorOptions options);
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Enables the central reaper, becomes a child subreaper when not PID 1, runs
  // `startup` on a worker thread and handles signals on this thread until mysqld
  // (SetMainChild) has ended, or `startup` failed (mysqld, if running, is then
  // stopped as on SIGTERM), or a stop signal arrived before mysqld started.
  // Returns the exit code for replboot. BlockSignals() must have run first.
  int Run(const std::function<Status(Supervisor&)>& startup);

  // --- for the startup worker ---

  // mysqld: every forwarded signal goes to it, and its end ends Run().
  void SetMainChild(pid_t pid);
  // A bootstrap step running before mysqld (install-db), spawned as the leader
  // of its own process group: a stop signal sends SIGTERM to that whole group so
  // the step ends early. 0 clears it.
  void SetStepChild(pid_t pid);
  // Stops mysqld for a restart within this run (a replica's automatic re-clone): SIGTERM,
  // SIGKILL once the shutdown grace has passed, and waits until it has been reaped. Its end
  // does not end Run(); the worker starts the next mysqld with SetMainChild(). kCancelled when
  // a stop signal arrives first or meanwhile (mysqld's end then ends Run() as always),
  // kInternal when no mysqld runs.
  Status StopMainChildForRestart();
  // True once a stop signal arrived; the worker gives up at its next check.
  bool Stopping() const { return stop_signal_.load() != 0; }
  // Requested with the first stop signal: the one token every bootstrap step and the
  // libraries under it (discovery, connect, stream, prepare) watch.
  std::stop_token StopToken() const { return stop_source_.get_token(); }
  // mysqld's status once it has ended (and been reaped).
  std::optional<process::ExitStatus> MainExit() const;
  // Sleeps up to `d`, returning early (false) when stopping or mysqld has ended.
  bool SleepUnlessDone(std::chrono::milliseconds d) const;

 private:
  void HandleSignal(int signo);
  void ReapAndCheckMain();
  void BeginStop(int signo, const char* reason);
  void KillIfGraceExpired();

  SupervisorOptions options_;
  std::atomic<int> stop_signal_{0};
  std::stop_source stop_source_;
  mutable std::mutex mutex_;
  pid_t main_pid_ = 0;
  pid_t step_pid_ = 0;
  std::optional<process::ExitStatus> main_exit_;
  std::optional<std::chrono::steady_clock::time_point> kill_deadline_;
  bool killed_ = false;
  bool restarting_ = false;  // StopMainChildForRestart: mysqld's end is not the end of Run()
};

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_SUPERVISOR_H_
