// Child processes: spawn with a clean signal state and an explicit environment,
// wait with a deadline, and share one reaper with the PID-1 supervisor.
//
// Why a central reaper: as PID 1 (or a subreaper) replboot must waitpid(-1) to
// reap orphans, which would steal the exit status of a child that some other
// part of replboot (prepare, mariabackup) is waiting for. Once
// EnableCentralReaper() is called, Wait() no longer calls waitpid itself; it
// waits for ReapChildren() (run on SIGCHLD by the supervisor) to hand over the
// status.
#ifndef REPLBOOT_BASE_PROCESS_H_
#define REPLBOOT_BASE_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "replboot/base/status.h"

namespace replboot::process {

struct ExitStatus {
  int code = 0;    // exit code when exited normally
  int signal = 0;  // terminating signal, 0 when exited normally

  static ExitStatus FromWaitStatus(int wstatus);
  bool ok() const { return signal == 0 && code == 0; }
  // The shell's convention (as tini): the exit code, or 128 + signal.
  int ShellCode() const { return signal != 0 ? 128 + signal : code; }
  std::string ToString() const;  // "exit code 3" / "killed by signal 9 (Killed)"
};

enum class Stdio { kInherit, kNull, kPipe };

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH when it has no '/'
  std::vector<std::string> env;   // "K=V" entries; see ChildEnvironment()
  Stdio stdin_mode = Stdio::kNull;
  Stdio stdout_mode = Stdio::kInherit;
  Stdio stderr_mode = Stdio::kInherit;
  int stdout_fd = -1;  // when >= 0, the child's stdout is this descriptor (overrides mode)
  bool new_process_group = false;
  // When not 0, the child gets this signal when replboot ends, however it ends (SIGKILL
  // included), so a tool replboot runs does not outlive it outside a container, where no
  // PID namespace takes every process down with PID 1. The kernel sends it when the *thread*
  // that forked the child ends, so such children are forked by one thread that lives as long
  // as the process, whichever thread calls Spawn(). The kernel clears it when the process
  // changes its user, so a server that should keep it must not switch users itself (mysqld
  // --user): start it as that user with `run_as` instead.
  int parent_death_signal = 0;
  // When set (replboot runs as root), the child takes this user and group (and no
  // supplementary groups) before exec, and the parent-death signal is set after that change,
  // so it holds. Requires parent_death_signal.
  struct User {
    uid_t uid;
    gid_t gid;
  };
  std::optional<User> run_as;
  // Lower priorities for a tool that must not starve the server it works beside (a donor's
  // backup tool): the child's nice value (0 = as replboot; only ever raised) and I/O class.
  int nice = 0;
  enum class IoPriority { kInherit, kBestEffortLowest, kIdle };
  IoPriority io_priority = IoPriority::kInherit;
};

struct Child {
  pid_t pid = -1;
  int stdin_fd = -1;   // our end of the pipes asked for, else -1; the caller closes them
  int stdout_fd = -1;
  int stderr_fd = -1;
};

// Starts a child with every signal unblocked and at its default action, whatever
// replboot itself blocks or ignores, and with no descriptor of replboot's but its stdin,
// stdout and stderr: Asio opens its sockets without O_CLOEXEC, and a
// child holding the HTTP or backup listener (or a client's connection) would keep the
// port busy after replboot ended and hand a stranger's connection to a server or tool.
Result<Child> Spawn(const SpawnOptions& options);

// Waits for `pid` to end; kTimeout when `timeout` passes first (the child keeps running).
Result<ExitStatus> Wait(pid_t pid, std::optional<std::chrono::milliseconds> timeout = std::nullopt);

// See the header comment. Call once, before spawning anything, in the supervisor.
void EnableCentralReaper();
// Hands reaping back to Wait() (each waiter calls waitpid for its own child again), for the
// time after the supervisor's signal loop has ended: services stopped then (a backup being
// served) still have children to wait for, and nobody would reap them.
void DisableCentralReaper();
// Reaps every ended child without blocking. Statuses of children spawned through
// Spawn() are kept for Wait(); others (re-parented orphans) go to `on_orphan`.
void ReapChildren(const std::function<void(pid_t, ExitStatus)>& on_orphan);

struct Captured {
  ExitStatus status;
  std::string out;
  std::string err;
};
// Runs a command to completion, capturing stdout and stderr (for `--version`,
// install-db, prepare). `stdin_data`, when given, is written to its stdin. The command is
// SIGKILLed when replboot ends (parent_death_signal): nobody would read its output any more.
// With a `stop` token that can be stopped, the child leads a process group of its own and a
// stop request ends that group (SIGTERM, SIGKILL after `kStopGrace`): kCancelled, once every
// process of the group is reaped, so nothing it started outlives the request.
inline constexpr std::chrono::seconds kStopGrace{5};
Result<Captured> RunCapture(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                            std::optional<std::string> stdin_data = std::nullopt,
                            std::stop_token stop = {});

// The CPUs this process may run on: its affinity mask, capped by the CPU quota of its cgroup
// (cgroup v2 /sys/fs/cgroup/cpu.max, what a container's CPU limit sets), rounded up; at
// least 1.
int UsableCpus();
// The CPUs a cgroup v2 cpu.max allows ("150000 100000" -> 2, rounded up); nullopt for "max"
// (no quota) or text that is not "<quota> <period>".
std::optional<int> CgroupQuotaCpus(std::string_view cpu_max);

// This process's environment without anything a child must not inherit:
// every REPLBOOT_* variable (they can carry passwords and the backup secret),
// MYSQL_PWD, and every AWS_* variable (the object store's credentials).
std::vector<std::string> ChildEnvironment();

}  // namespace replboot::process

#endif  // REPLBOOT_BASE_PROCESS_H_
