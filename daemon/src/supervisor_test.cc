#include "replboot/daemon/supervisor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "replboot/base/process.h"

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
    if (got != "ready\n") return Error(StatusCode::kInternal, "trapped shell said {:?}", got);
    return child->pid;
  }

  static Result<pid_t> SpawnShell(const std::string& script) {
    process::SpawnOptions options;
    options.argv = {"sh", "-c", script};
    options.env = process::ChildEnvironment();
    auto child = process::Spawn(options);
    if (!child) return Error(child.error());
    return child->pid;
  }
};

TEST_F(SupervisorTest, MysqldEndingOnItsOwnExitsWithItsCode) {
  Supervisor sup(Fast());
  int code = sup.Run([](Supervisor& s) -> Status {
    auto pid = SpawnShell("exit 5");
    if (!pid) return pid.error();
    s.SetMainChild(*pid);
    return Status::Ok();
  });
  EXPECT_EQ(code, 5);
}

TEST_F(SupervisorTest, MysqldExitingZeroOnItsOwnExitsOne) {
  Supervisor sup(Fast());
  int code = sup.Run([](Supervisor& s) -> Status {
    auto pid = SpawnShell("exit 0");
    if (!pid) return pid.error();
    s.SetMainChild(*pid);
    return Status::Ok();
  });
  EXPECT_EQ(code, 1);
}

TEST_F(SupervisorTest, SigtermIsForwardedAndCleanExitIsZero) {
  Supervisor sup(Fast());
  int code = sup.Run([](Supervisor& s) -> Status {
    // Exits 0 on SIGTERM, as mysqld does after a clean shutdown.
    auto pid = SpawnTrapped("trap 'exit 0' TERM");
    if (!pid) return pid.error();
    s.SetMainChild(*pid);
    ::kill(::getpid(), SIGTERM);
    return Status::Ok();
  });
  EXPECT_EQ(code, 0);
}

TEST_F(SupervisorTest, SigintIsDeliveredAsSigterm) {
  Supervisor sup(Fast());
  int code = sup.Run([](Supervisor& s) -> Status {
    auto pid = SpawnTrapped("trap 'exit 0' TERM; trap 'exit 9' INT");
    if (!pid) return pid.error();
    s.SetMainChild(*pid);
    ::kill(::getpid(), SIGINT);
    return Status::Ok();
  });
  EXPECT_EQ(code, 0);
}

TEST_F(SupervisorTest, OtherSignalsAreForwardedWithoutStopping) {
  char dir_template[] = "/tmp/replboot-sup-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  std::string marker = std::string(dir_template) + "/hup";
  Supervisor sup(Fast());
  int code = sup.Run([&](Supervisor& s) -> Status {
    auto pid = SpawnTrapped("trap 'touch " + marker + "' HUP; trap 'exit 0' TERM");
    if (!pid) return pid.error();
    s.SetMainChild(*pid);
    ::kill(::getpid(), SIGHUP);
    for (int i = 0; i < 100 && ::access(marker.c_str(), F_OK) != 0; ++i) {
      std::this_thread::sleep_for(milliseconds(20));
    }
    EXPECT_FALSE(s.Stopping());
    ::kill(::getpid(), SIGTERM);
    return Status::Ok();
  });
  EXPECT_EQ(code, 0);
  EXPECT_EQ(::access(marker.c_str(), F_OK), 0) << "SIGHUP was not forwarded";
  ::unlink(marker.c_str());
  ::rmdir(dir_template);
}

TEST_F(SupervisorTest, ChildIgnoringSigtermIsKilledAfterGrace) {
  Supervisor sup(Fast());
  auto start = std::chrono::steady_clock::now();
  int code = sup.Run([](Supervisor& s) -> Status {
    auto pid = SpawnTrapped("trap '' TERM");
    if (!pid) return pid.error();
    s.SetMainChild(*pid);
    ::kill(::getpid(), SIGTERM);
    return Status::Ok();
  });
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(code, 137);
  EXPECT_GE(elapsed, milliseconds(300));  // the grace period
}

TEST_F(SupervisorTest, OrphanedGrandchildIsReaped) {
  char dir_template[] = "/tmp/replboot-sup-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  std::string pid_file = std::string(dir_template) + "/orphan.pid";
  pid_t orphan = 0;
  std::string state_while_running;
  Supervisor sup(Fast());
  int code = sup.Run([&](Supervisor& s) -> Status {
    // The subshell exits at once, so `sleep` is re-parented to us (subreaper).
    auto pid = SpawnTrapped("(sleep 0.2 & echo $! > " + pid_file + "); trap 'exit 0' TERM");
    if (!pid) return pid.error();
    s.SetMainChild(*pid);
    for (int i = 0; i < 100 && orphan == 0; ++i) {
      std::ifstream in(pid_file);
      in >> orphan;
      std::this_thread::sleep_for(milliseconds(20));
    }
    // It ends after 0.2 s; reaped, its /proc entry goes away (a zombie keeps one).
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
  ::unlink(pid_file.c_str());
  ::rmdir(dir_template);
}

TEST_F(SupervisorTest, StopWhileWaitingForReadinessKeepsMysqldStatus) {
  Supervisor sup(Fast());
  int code = sup.Run([](Supervisor& s) -> Status {
    auto pid = SpawnTrapped("trap '' TERM");
    if (!pid) return pid.error();
    s.SetMainChild(*pid);
    ::kill(::getpid(), SIGTERM);
    // As the readiness wait does: give up on the stop, with kCancelled.
    while (s.SleepUnlessDone(milliseconds(50))) {
    }
    return Status(StatusCode::kCancelled, "stop requested while waiting for mysqld");
  });
  EXPECT_EQ(code, 137);  // mysqld's end decides, not the cancelled wait
}

TEST_F(SupervisorTest, HookFailingBecauseOfAStopKeepsMysqldStatus) {
  Supervisor sup(Fast());
  int code = sup.Run([](Supervisor& s) -> Status {
    auto pid = SpawnTrapped("trap 'exit 0' TERM");
    if (!pid) return pid.error();
    s.SetMainChild(*pid);
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
  Supervisor sup(Fast());
  pid_t child = 0;
  int code = sup.Run([&](Supervisor& s) -> Status {
    auto pid = SpawnTrapped("trap 'exit 0' TERM");
    if (!pid) return pid.error();
    child = *pid;
    s.SetMainChild(*pid);
    return Status(StatusCode::kTimeout, "mysqld did not accept connections");
  });
  EXPECT_EQ(code, 1);
  ASSERT_GT(child, 0);
  EXPECT_NE(::kill(child, 0), 0) << "mysqld stand-in still running";
}

TEST_F(SupervisorTest, StopDuringBootstrapStepEndsTheStep) {
  Supervisor sup(Fast());
  int code = sup.Run([](Supervisor& s) -> Status {
    auto pid = SpawnShell("sleep 30");
    if (!pid) return pid.error();
    s.SetStepChild(*pid);
    ::kill(::getpid(), SIGTERM);
    auto status = process::Wait(*pid, std::chrono::seconds(10));
    s.SetStepChild(0);
    if (!status) return status.error();
    return Status(StatusCode::kCancelled, "install-db ended: " + status->ToString());
  });
  EXPECT_EQ(code, 143);
}

TEST_F(SupervisorTest, WorkerSeesMysqldEnd) {
  Supervisor sup(Fast());
  bool saw_end = false;
  int code = sup.Run([&](Supervisor& s) -> Status {
    auto pid = SpawnShell("exit 4");
    if (!pid) return pid.error();
    s.SetMainChild(*pid);
    // As the readiness wait does: give up once mysqld has ended.
    while (s.SleepUnlessDone(milliseconds(50))) {
    }
    saw_end = s.MainExit().has_value();
    return Status(StatusCode::kUnavailable, "mysqld exited before accepting connections");
  });
  EXPECT_TRUE(saw_end);
  EXPECT_EQ(code, 4);
}

}  // namespace
}  // namespace replboot::daemon
