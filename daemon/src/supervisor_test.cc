#include "replboot/daemon/supervisor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <thread>

#include "replboot/base/log.h"
#include "replboot/base/process.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::daemon {
namespace {

using std::chrono::milliseconds;

TEST(ExitCodeTest, RequestedStopReportsMysqldStatus) {
  process::ExitStatus clean;
  EXPECT_EQ(ExitCodeFor(clean, /*stop_requested=*/true), 0);
  process::ExitStatus killed;
  killed.signal = SIGKILL;
  EXPECT_EQ(ExitCodeFor(killed, true), 137);
  process::ExitStatus failed;
  failed.code = 3;
  EXPECT_EQ(ExitCodeFor(failed, true), 3);
}

TEST(ExitCodeTest, UnrequestedEndIsNeverZero) {
  process::ExitStatus clean;
  EXPECT_EQ(ExitCodeFor(clean, /*stop_requested=*/false), 1);
  process::ExitStatus failed;
  failed.code = 7;
  EXPECT_EQ(ExitCodeFor(failed, false), 7);
  process::ExitStatus segv;
  segv.signal = SIGSEGV;
  EXPECT_EQ(ExitCodeFor(segv, false), 128 + SIGSEGV);
}

TEST(ExitCodeTest, StartupErrors) {
  EXPECT_EQ(ExitCodeForStartupError(Status(StatusCode::kInvalidArgument, "bad hostname"), 0), 2);
  EXPECT_EQ(ExitCodeForStartupError(Status(StatusCode::kTimeout, "no connection"), 0), 1);
  EXPECT_EQ(ExitCodeForStartupError(Status(StatusCode::kCancelled, "stop"), SIGTERM), 143);
  EXPECT_EQ(ExitCodeForStartupError(Status(StatusCode::kIOError, "install-db killed"), SIGINT),
            130);
}

TEST(ExitCodeTest, StopSignals) {
  EXPECT_TRUE(IsStopSignal(SIGTERM));
  EXPECT_TRUE(IsStopSignal(SIGINT));
  EXPECT_TRUE(IsStopSignal(SIGQUIT));
  EXPECT_FALSE(IsStopSignal(SIGHUP));
  EXPECT_FALSE(IsStopSignal(SIGUSR1));
}

// The tests below run real children under a real Supervisor in this process:
// signals are blocked once for the whole binary (gtest creates no threads).
class SupervisorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(Supervisor::BlockSignals().ok()); }

  static SupervisorOptions Fast() {
    SupervisorOptions o;
    o.shutdown_grace = milliseconds(300);
    o.tick = milliseconds(20);
    o.worker_join_timeout = milliseconds(5000);
    return o;
  }

  // A shell that has installed `traps` (signals sent earlier would find the
  // default action) and then loops until a signal ends it.
  static Result<pid_t> SpawnTrapped(const std::string& traps) {
    process::SpawnOptions options;
    options.argv = {"sh", "-c", traps + "; echo ready; while :; do sleep 0.05; done"};
    options.env = process::ChildEnvironment();
    options.stdout_mode = process::Stdio::kPipe;
    auto child = process::Spawn(options);
    if (!child) return Error(child.error());
    std::string got;
    char c;
    while (got != "ready\n" && ::read(child->stdout_fd, &c, 1) == 1) got += c;
    ::close(child->stdout_fd);
    if (got != "ready\n") return Error(StatusCode::kInternal, "trapped shell said {}", log::Printable(got));
    return child->pid;
  }

  static Result<pid_t> SpawnShell(const std::string& script, bool new_process_group = false) {
    process::SpawnOptions options;
    options.argv = {"sh", "-c", script};
    options.env = process::ChildEnvironment();
    options.new_process_group = new_process_group;
    auto child = process::Spawn(options);
    if (!child) return Error(child.error());
    return child->pid;
  }

  // The mysqld stand-in: a script that runs to its end, or traps and loops.
  struct Mysqld {
    std::string script;
    bool trapped = false;
  };
  static Mysqld Exits(int code) { return {"exit " + std::to_string(code), false}; }
  static Mysqld Traps(std::string traps) { return {std::move(traps), true}; }

  // What the startup worker does once mysqld runs.
  using Then = std::function<Status(Supervisor&, pid_t mysqld)>;
  static Status Nothing(Supervisor&, pid_t) { return Status::Ok(); }
  // replboot receives `signo`, as from the container runtime.
  static Then Send(int signo) {
    return [signo](Supervisor&, pid_t) {
      ::kill(::getpid(), signo);
      return Status::Ok();
    };
  }

  // Runs a Supervisor whose startup starts `mysqld` as the main child and then
  // does `then`; returns replboot's exit code.
  static int RunMysqld(const Mysqld& mysqld, const Then& then = Nothing) {
    Supervisor sup(Fast());
    return sup.Run([&](Supervisor& s) -> Status {
      auto pid = mysqld.trapped ? SpawnTrapped(mysqld.script) : SpawnShell(mysqld.script);
      if (!pid) return pid.error();
      s.SetMainChild(*pid);
      return then(s, *pid);
    });
  }

  // Polls `done` for up to about two seconds.
  static void WaitUntil(const std::function<bool()>& done) {
    for (int i = 0; i < 100 && !done(); ++i) std::this_thread::sleep_for(milliseconds(20));
  }

  static bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

  replboot::testing::TempDir tmp_{"supervisor-test"};  // scratch files of one test
};

// How mysqld's end, alone or after a signal replboot received, becomes replboot's exit code.
struct EndCase {
  const char* name;
  std::string script;  // trapped when `signal` is set: it must be running to get it
  int signal;          // sent to replboot once mysqld runs; 0: none
  int code;            // replboot's exit code
};

// Names the case in test listings instead of dumping its bytes.
void PrintTo(const EndCase& c, std::ostream* os) { *os << c.name; }

class SupervisorEndTest : public SupervisorTest, public ::testing::WithParamInterface<EndCase> {};

// One binary runs every test: a child started after a run must still be waited for (before,
// the first Wait() after a Supervisor waited for the central reaper forever), and orphans go
// back to init (before, they stayed zombies of this process, which nothing reaps any more).
TEST_F(SupervisorTest, WaitWorksAfterTheRunEnded) {
  EXPECT_EQ(RunMysqld(Exits(5)), 5);
  int subreaper = -1;
  ASSERT_EQ(::prctl(PR_GET_CHILD_SUBREAPER, &subreaper, 0, 0, 0), 0);
  EXPECT_EQ(subreaper, 0);
  auto pid = SpawnShell("exit 3");
  ASSERT_TRUE(pid);
  auto status = process::Wait(*pid, std::chrono::seconds(5));
  ASSERT_TRUE(status) << status.error().ToString();
  EXPECT_EQ(status->code, 3);
}

TEST_P(SupervisorEndTest, ExitCode) {
  const EndCase& c = GetParam();
  int code =
      c.signal == 0 ? RunMysqld({c.script, false}) : RunMysqld(Traps(c.script), Send(c.signal));
  EXPECT_EQ(code, c.code);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SupervisorEndTest,
    ::testing::Values(
        EndCase{"MysqldEndingOnItsOwnExitsWithItsCode", "exit 5", 0, 5},
        EndCase{"MysqldExitingZeroOnItsOwnExitsOne", "exit 0", 0, 1},
        // Exits 0 on SIGTERM, as mysqld does after a clean shutdown.
        EndCase{"SigtermIsForwardedAndCleanExitIsZero", "trap 'exit 0' TERM", SIGTERM, 0},
        EndCase{"SigintIsDeliveredAsSigterm", "trap 'exit 0' TERM; trap 'exit 9' INT", SIGINT, 0}),
    [](const ::testing::TestParamInfo<EndCase>& info) { return std::string(info.param.name); });

TEST_F(SupervisorTest, OtherSignalsAreForwardedWithoutStopping) {
  std::string marker = tmp_.Path("hup");
  int code = RunMysqld(Traps("trap 'touch " + marker + "' HUP; trap 'exit 0' TERM"),
                       [&](Supervisor& s, pid_t) {
                         ::kill(::getpid(), SIGHUP);
                         WaitUntil([&] { return Exists(marker); });
                         EXPECT_FALSE(s.Stopping());
                         ::kill(::getpid(), SIGTERM);
                         return Status::Ok();
                       });
  EXPECT_EQ(code, 0);
  EXPECT_TRUE(Exists(marker)) << "SIGHUP was not forwarded";
}

TEST_F(SupervisorTest, ChildIgnoringSigtermIsKilledAfterGrace) {
  auto start = std::chrono::steady_clock::now();
  int code = RunMysqld(Traps("trap '' TERM"), Send(SIGTERM));
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(code, 137);
  EXPECT_GE(elapsed, Fast().shutdown_grace);
}

TEST_F(SupervisorTest, OrphanedGrandchildIsReaped) {
  std::string pid_file = tmp_.Path("orphan.pid");
  pid_t orphan = 0;
  std::string state_while_running;
  // The subshell exits at once, so `sleep` is re-parented to us (subreaper).
  int code = RunMysqld(Traps("(sleep 0.2 & echo $! > " + pid_file + "); trap 'exit 0' TERM"),
                       [&](Supervisor&, pid_t) {
                         WaitUntil([&] {
                           std::ifstream(pid_file) >> orphan;
                           return orphan != 0;
                         });
                         // It ends after 0.2 s; reaped, its /proc entry goes away (a zombie keeps
                         // one).
                         for (int i = 0; i < 250; ++i) {
                           std::ifstream stat("/proc/" + std::to_string(orphan) + "/stat");
                           state_while_running.clear();
                           std::getline(stat, state_while_running);
                           if (state_while_running.empty()) break;
                           std::this_thread::sleep_for(milliseconds(20));
                         }
                         ::kill(::getpid(), SIGTERM);
                         return Status::Ok();
                       });
  EXPECT_EQ(code, 0);
  ASSERT_GT(orphan, 0);
  // Reaped: no /proc entry at all (a zombie would still show state Z).
  EXPECT_EQ(state_while_running, "")
      << "orphan " << orphan << " not reaped: " << state_while_running;
}

TEST_F(SupervisorTest, StopWhileWaitingForReadinessKeepsMysqldStatus) {
  int code = RunMysqld(Traps("trap '' TERM"), [](Supervisor& s, pid_t) {
    ::kill(::getpid(), SIGTERM);
    // As the readiness wait does: give up on the stop, with kCancelled.
    while (s.SleepUnlessDone(milliseconds(50))) {
    }
    return Status(StatusCode::kCancelled, "stop requested while waiting for mysqld");
  });
  EXPECT_EQ(code, 137);  // mysqld's end decides, not the cancelled wait
}

TEST_F(SupervisorTest, HookFailingBecauseOfAStopKeepsMysqldStatus) {
  int code = RunMysqld(Traps("trap 'exit 0' TERM"), [](Supervisor& s, pid_t) {
    ::kill(::getpid(), SIGTERM);
    while (!s.Stopping()) std::this_thread::sleep_for(milliseconds(10));
    // An after-ready hook whose connection died with the shutdown.
    return Status(StatusCode::kUnavailable, "lost connection to mysqld");
  });
  EXPECT_EQ(code, 0);
}

TEST_F(SupervisorTest, StartupFailureBeforeMysqldExitsWithItsCode) {
  Supervisor sup(Fast());
  int code = sup.Run([](Supervisor&) -> Status {
    return Status(StatusCode::kInvalidArgument, "hostname mysql has no ordinal");
  });
  EXPECT_EQ(code, 2);
}

TEST_F(SupervisorTest, StartupFailureWhileMysqldRunsStopsIt) {
  pid_t child = 0;
  int code = RunMysqld(Traps("trap 'exit 0' TERM"), [&](Supervisor&, pid_t pid) {
    child = pid;
    return Status(StatusCode::kTimeout, "mysqld did not accept connections");
  });
  EXPECT_EQ(code, 1);
  ASSERT_GT(child, 0);
  EXPECT_NE(::kill(child, 0), 0) << "mysqld stand-in still running";
}

// A step is spawned as the leader of its own process group (as RunStep() does), so
// the stop reaches everything it started. It must end on the SIGTERM, long before
// its own end: if the stop missed it, the 10 s wait below would fail the test.
TEST_F(SupervisorTest, StopDuringBootstrapStepEndsTheStep) {
  Supervisor sup(Fast());
  pid_t step = 0;
  std::optional<process::ExitStatus> step_end;
  int code = sup.Run([&](Supervisor& s) -> Status {
    auto pid = SpawnShell("sleep 30", /*new_process_group=*/true);
    if (!pid) return pid.error();
    step = *pid;
    s.SetStepChild(*pid);
    ::kill(::getpid(), SIGTERM);
    auto status = process::Wait(*pid, std::chrono::seconds(10));
    s.SetStepChild(0);
    if (!status) return status.error();
    step_end = *status;
    return Status(StatusCode::kCancelled, "install-db ended: " + status->ToString());
  });
  if (!step_end && step > 0) ::kill(-step, SIGKILL);  // never left behind for ctest to wait on
  EXPECT_EQ(code, 143);
  ASSERT_TRUE(step_end.has_value()) << "the step outlived the stop";
  EXPECT_EQ(step_end->signal, SIGTERM) << step_end->ToString();
}

TEST_F(SupervisorTest, WorkerSeesMysqldEnd) {
  bool saw_end = false;
  int code = RunMysqld(Exits(4), [&](Supervisor& s, pid_t) {
    // As the readiness wait does: give up once mysqld has ended.
    while (s.SleepUnlessDone(milliseconds(50))) {
    }
    saw_end = s.MainExit().has_value();
    return Status(StatusCode::kUnavailable, "mysqld exited before accepting connections");
  });
  EXPECT_TRUE(saw_end);
  EXPECT_EQ(code, 4);
}

// A replica's re-clone stops mysqld within the run: its end does not end Run(), the next
// mysqld is the one whose end (and signals) count.
TEST_F(SupervisorTest, MysqldStoppedForARestartDoesNotEndTheRun) {
  std::string marker = tmp_.Path("second");
  pid_t first = 0;
  int code = RunMysqld(Traps("trap 'exit 0' TERM"), [&](Supervisor& s, pid_t pid) {
    first = pid;
    Status stopped = s.StopMainChildForRestart();
    if (!stopped.ok()) return stopped;
    EXPECT_FALSE(s.MainExit().has_value());
    EXPECT_NE(::kill(first, 0), 0) << "the first mysqld still runs";
    auto second = SpawnTrapped("trap 'touch " + marker + "; exit 0' TERM");
    if (!second) return second.error();
    s.SetMainChild(*second);
    ::kill(::getpid(), SIGTERM);
    return Status::Ok();
  });
  EXPECT_EQ(code, 0);
  EXPECT_TRUE(Exists(marker)) << "SIGTERM did not reach the second mysqld";
}

TEST_F(SupervisorTest, RestartOfAMysqldIgnoringSigtermKillsItAfterTheGrace) {
  int code = RunMysqld(Traps("trap '' TERM"), [&](Supervisor& s, pid_t) {
    auto start = std::chrono::steady_clock::now();
    Status stopped = s.StopMainChildForRestart();
    EXPECT_TRUE(stopped.ok()) << stopped.ToString();
    EXPECT_GE(std::chrono::steady_clock::now() - start, Fast().shutdown_grace);
    auto second = SpawnShell("exit 6");
    if (!second) return second.error();
    s.SetMainChild(*second);
    return Status::Ok();
  });
  EXPECT_EQ(code, 6);  // the second one's own end
}

TEST_F(SupervisorTest, StopSignalDuringARestartEndsTheRun) {
  Status stopped;
  int code = RunMysqld(Traps("trap 'sleep 0.1; exit 0' TERM"), [&](Supervisor& s, pid_t) {
    std::thread signal([] {
      std::this_thread::sleep_for(milliseconds(50));
      ::kill(::getpid(), SIGTERM);
    });
    stopped = s.StopMainChildForRestart();
    signal.join();
    return stopped;
  });
  EXPECT_EQ(stopped.code(), StatusCode::kCancelled) << stopped.ToString();
  EXPECT_EQ(code, 0);  // mysqld's clean end after the stop request
}

}  // namespace
}  // namespace replboot::daemon
