#include "replboot/base/process.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

namespace replboot::process {
namespace {

TEST(ProcessTest, CapturesOutputAndExitCode) {
  auto r = RunCapture({"sh", "-c", "echo out; echo err >&2; exit 3"}, ChildEnvironment());
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_EQ(r->status.code, 3);
  EXPECT_EQ(r->status.ShellCode(), 3);
}

TEST(ProcessTest, FeedsStdin) {
  auto r = RunCapture({"cat"}, {}, std::string("hello"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->out, "hello");
  EXPECT_TRUE(r->status.ok());
}

TEST(ProcessTest, SignalledChildReports128PlusSignal) {
  auto r = RunCapture({"sh", "-c", "kill -KILL $$"}, {});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status.signal, SIGKILL);
  EXPECT_EQ(r->status.ShellCode(), 137);
}

TEST(ProcessTest, ChildGetsCleanSignalStateEvenWhenParentBlocks) {
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
  // SigBlk of the child must be all zero.
  auto r = RunCapture({"sh", "-c", "grep SigBlk /proc/self/status"}, {});
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(r);
  EXPECT_NE(r->out.find("0000000000000000"), std::string::npos) << r->out;
}

TEST(ProcessTest, MissingBinaryIsAnError) {
  SpawnOptions options;
  options.argv = {"/nonexistent/replboot-no-such-binary"};
  auto r = Spawn(options);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("replboot-no-such-binary"), std::string::npos);
}

TEST(ProcessTest, WaitTimesOut) {
  SpawnOptions options;
  options.argv = {"sleep", "5"};
  auto child = Spawn(options);
  ASSERT_TRUE(child);
  auto w = Wait(child->pid, std::chrono::milliseconds(50));
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code(), StatusCode::kTimeout);
  ::kill(child->pid, SIGKILL);
  auto done = Wait(child->pid);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->signal, SIGKILL);
}

TEST(ProcessTest, WaiterFallsBackToWaitpidWhenTheCentralReaperIsSwitchedOff) {
  EnableCentralReaper();
  SpawnOptions options;
  options.argv = {"sh", "-c", "sleep 0.2; exit 7"};
  auto child = Spawn(options);
  ASSERT_TRUE(child);
  // Nobody calls ReapChildren(): without the hand-back this Wait() would never return.
  std::thread off([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    DisableCentralReaper();
  });
  auto status = Wait(child->pid, std::chrono::seconds(10));
  off.join();
  ASSERT_TRUE(status) << status.error().ToString();
  EXPECT_EQ(status->code, 7);
}

TEST(ProcessTest, ChildEnvironmentDropsSecrets) {
  ::setenv("REPLBOOT_MYSQL_ROOT_PASSWORD", "hunter2", 1);
  ::setenv("MYSQL_PWD", "hunter2", 1);
  for (const auto& e : ChildEnvironment()) {
    EXPECT_EQ(e.find("hunter2"), std::string::npos) << e;
  }
  ::unsetenv("REPLBOOT_MYSQL_ROOT_PASSWORD");
  ::unsetenv("MYSQL_PWD");
}

TEST(ProcessTest, ChildEnvironmentDropsAwsCredentials) {
  ::setenv("AWS_ACCESS_KEY_ID", "AKIDLEAKED", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "s3cr3tleaked", 1);
  ::setenv("AWS_SESSION_TOKEN", "tokenleaked", 1);
  ::setenv("REPLBOOT_TEST_KEEP_ME", "x", 1);
  ::setenv("NOT_AWS_KEEP", "kept", 1);
  const auto env = ChildEnvironment();
  for (const auto& e : env) {
    EXPECT_FALSE(e.starts_with("AWS_")) << e;
    EXPECT_EQ(e.find("leaked"), std::string::npos) << e;
  }
  // Only the AWS_ prefix goes: a variable that merely contains it stays.
  EXPECT_NE(std::find(env.begin(), env.end(), "NOT_AWS_KEEP=kept"), env.end());
  // And a child really gets none of them.
  auto r = RunCapture({"sh", "-c", "env"}, env);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->out.find("leaked"), std::string::npos);
  EXPECT_NE(r->out.find("NOT_AWS_KEEP=kept"), std::string::npos);
  for (const char* name : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                           "REPLBOOT_TEST_KEEP_ME", "NOT_AWS_KEEP"}) {
    ::unsetenv(name);
  }
}

// Starts `sleep 60` from a thread that ends at once, as the supervisor's start-up thread and a
// backup connection's thread do; the sleeper's pid.
constexpr uid_t kNobody = 65534;

pid_t SleeperFromEndedThread(int parent_death_signal, bool as_nobody = false) {
  pid_t pid = -1;
  std::thread([&] {
    SpawnOptions options;
    options.argv = {"sleep", "60"};
    options.parent_death_signal = parent_death_signal;
    if (as_nobody) options.run_as = SpawnOptions::User{kNobody, kNobody};
    auto child = Spawn(options);
    if (child) pid = child->pid;
  }).join();
  return pid;
}

bool Gone(pid_t pid) {
  // Killed and reaped by init, or a zombie until it is.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  return line.substr(line.rfind(')') + 2, 1) == "Z";
}

// Not a test of its own: run by ParentDeathSignalReachesTheChildWhenReplbootIsKilled in a child
// process (this binary again), which it SIGKILLs. Prints the sleeper's pid, then waits.
TEST(ProcessTest, ParentDeathHelper) {
  const char* mode = ::getenv("REPLBOOT_TEST_PARENT_DEATH_HELPER");
  if (!mode) GTEST_SKIP() << "helper of ParentDeathSignalReachesTheChildWhenReplbootIsKilled";
  pid_t pid = SleeperFromEndedThread(std::string(mode) == "off" ? 0 : SIGKILL,
                                     std::string(mode) == "as-nobody");
  std::printf("%d\n", pid);
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::seconds(60));
}

// Runs the helper in `mode` ("on": with a parent-death signal, "off": without), SIGKILLs it
// once its sleeper runs; the sleeper's pid.
pid_t SleeperOfAKilledParent(const std::string& mode) {
  SpawnOptions options;
  options.argv = {"/proc/self/exe", "--gtest_filter=ProcessTest.ParentDeathHelper"};
  options.env = ChildEnvironment();
  options.env.push_back("REPLBOOT_TEST_PARENT_DEATH_HELPER=" + mode);
  options.stdout_mode = Stdio::kPipe;
  auto helper = Spawn(options);
  if (!helper) return -1;
  std::string out;
  char c;
  // gtest prints its banner first; the pid is the first line that is a number.
  while (::read(helper->stdout_fd, &c, 1) == 1) {
    if (c != '\n') {
      out += c;
    } else if (!out.empty() && out.find_first_not_of("0123456789") == std::string::npos) {
      break;
    } else {
      out.clear();
    }
  }
  ::close(helper->stdout_fd);
  ::kill(helper->pid, SIGKILL);
  (void)Wait(helper->pid);
  return out.empty() ? -1 : std::stoi(out);
}

TEST(ProcessTest, ParentDeathSignalReachesTheChildWhenReplbootIsKilled) {
  pid_t sleeper = SleeperOfAKilledParent("on");
  ASSERT_GT(sleeper, 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!Gone(sleeper) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(Gone(sleeper)) << "the child outlived its killed parent";
  ::kill(sleeper, SIGKILL);

  // Without the signal the same child outlives its parent: the check above can fail.
  sleeper = SleeperOfAKilledParent("off");
  ASSERT_GT(sleeper, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(Gone(sleeper));
  ::kill(sleeper, SIGKILL);
}

// Runs `options` (stdout piped) to its end; what it wrote to stdout, or nullopt when it could
// not start or be waited for.
std::optional<std::string> StdoutOf(SpawnOptions options) {
  options.stdout_mode = Stdio::kPipe;
  auto child = Spawn(options);
  if (!child) return std::nullopt;
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = ::read(child->stdout_fd, buf, sizeof buf)) > 0) out.append(buf, n);
  ::close(child->stdout_fd);
  if (!Wait(child->pid)) return std::nullopt;
  return out;
}

// mysqld is started as its user this way: a child that switched users itself (mysqld --user)
// would have lost the signal.
TEST(ProcessTest, ParentDeathSignalHoldsForAChildStartedAsAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to start a child as another user";
  SpawnOptions options;
  options.argv = {"sh", "-c", "id -u; id -g; id -G"};
  options.parent_death_signal = SIGKILL;
  options.run_as = SpawnOptions::User{kNobody, kNobody};
  // No supplementary group of root's kept.
  EXPECT_EQ(StdoutOf(options), "65534\n65534\n65534\n");

  pid_t sleeper = SleeperOfAKilledParent("as-nobody");
  ASSERT_GT(sleeper, 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!Gone(sleeper) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(Gone(sleeper)) << "the child started as another user outlived its killed parent";
  ::kill(sleeper, SIGKILL);
}

// Asio's sockets are not O_CLOEXEC: a child must not inherit them (nor any other descriptor).
TEST(ProcessTest, ChildrenInheritNoDescriptorButStdio) {
  int leaky = ::socket(AF_INET, SOCK_STREAM, 0);  // no SOCK_CLOEXEC, as Asio opens them
  ASSERT_GE(leaky, 3);
  std::string probe = "ls /proc/self/fd | sort -n | tr '\\n' ' '";
  for (int death_signal : {0, SIGKILL}) {  // posix_spawn and the fork path
    SpawnOptions options;
    options.argv = {"sh", "-c", probe};
    options.parent_death_signal = death_signal;
    // 0-2, and 3: the directory `ls` itself opened.
    EXPECT_EQ(StdoutOf(options), "0 1 2 3 ") << "signal " << death_signal;
  }
  ::close(leaky);
}

TEST(ProcessTest, RunAsWithoutAParentDeathSignalIsRefused) {
  SpawnOptions options;
  options.argv = {"true"};
  options.run_as = SpawnOptions::User{kNobody, kNobody};
  auto child = Spawn(options);
  ASSERT_FALSE(child);
  EXPECT_EQ(child.error().code(), StatusCode::kInvalidArgument);
}

TEST(ProcessTest, ParentDeathSignalChildOutlivesTheThreadThatStartedIt) {
  pid_t pid = SleeperFromEndedThread(SIGKILL);
  ASSERT_GT(pid, 0);
  // The starting thread has ended; the child must still run (the kernel signals the child
  // when the thread that forked it ends, which is the one fork thread, not that one).
  auto w = Wait(pid, std::chrono::milliseconds(300));
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code(), StatusCode::kTimeout);
  ::kill(pid, SIGKILL);
  auto done = Wait(pid);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->signal, SIGKILL);
}

TEST(ProcessTest, ParentDeathSignalSpawnKeepsStdioEnvironmentAndErrors) {
  // RunCapture takes the fork path: pipes, stdin, the environment given and nothing else.
  auto r = RunCapture({"sh", "-c", "cat; echo \"[$ONLY]\" >&2; echo \"[$HOME]\""}, {"ONLY=this"},
                      std::string("in"));
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->out, "in[]\n");
  EXPECT_EQ(r->err, "[this]\n");
  SpawnOptions options;
  options.argv = {"replboot-no-such-binary-in-path"};
  options.parent_death_signal = SIGKILL;
  auto missing = Spawn(options);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("replboot-no-such-binary-in-path"), std::string::npos);
  options.argv = {"/etc/passwd"};  // exists, not executable: the child's execve fails
  missing = Spawn(options);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("/etc/passwd"), std::string::npos);
}

TEST(ProcessTest, CgroupQuotaCpusRoundsUpAndIgnoresNoQuota) {
  EXPECT_EQ(CgroupQuotaCpus("max 100000\n"), std::nullopt);
  EXPECT_EQ(CgroupQuotaCpus("100000 100000\n"), 1);
  EXPECT_EQ(CgroupQuotaCpus("150000 100000"), 2);
  EXPECT_EQ(CgroupQuotaCpus("50000 100000"), 1);
  EXPECT_EQ(CgroupQuotaCpus("400000 100000\n"), 4);
  for (std::string_view bad : {"", "100000", "x 100000", "100000 0", "-5 100000", "1e5 100000",
                               "100000 100000 7"}) {
    EXPECT_EQ(CgroupQuotaCpus(bad), std::nullopt) << bad;
  }
}

TEST(ProcessTest, UsableCpusIsWithinTheMachine) {
  const int cpus = UsableCpus();
  EXPECT_GE(cpus, 1);
  EXPECT_LE(cpus, static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)));
}

}  // namespace
}  // namespace replboot::process

namespace replboot::process {
namespace {

// A donor's backup tool runs at lower CPU and I/O priority than the server it copies. Read
// back from the kernel: field 19 of /proc/<pid>/stat is the nice value; ioprio_get(2) the
// I/O class and level (class << 13 | level).
TEST(ProcessTest, TheChildRunsAtTheLowerPrioritiesAsked) {
  SpawnOptions options;
  options.argv = {"sh", "-c", "cut -d' ' -f19 /proc/$$/stat"};
  options.env = ChildEnvironment();
  options.nice = 10;
  options.io_priority = SpawnOptions::IoPriority::kBestEffortLowest;
  auto nice = StdoutOf(options);
  ASSERT_TRUE(nice);
  EXPECT_EQ(*nice, "10\n");

  // The I/O priority, asked of the kernel from inside the child (python3 is a test dependency).
  options.argv = {"python3", "-c",
                  "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
                  "print(libc.syscall(252, 1, 0))"};  // SYS_ioprio_get on x86-64
  auto best_effort = StdoutOf(options);
  ASSERT_TRUE(best_effort);
  EXPECT_EQ(*best_effort, std::to_string((2 << 13) | 7) + "\n");
  options.io_priority = SpawnOptions::IoPriority::kIdle;
  auto idle = StdoutOf(options);
  ASSERT_TRUE(idle);
  EXPECT_EQ(*idle, std::to_string(3 << 13) + "\n");

  // Nothing asked: as replboot.
  options.nice = 0;
  options.io_priority = SpawnOptions::IoPriority::kInherit;
  options.argv = {"sh", "-c", "cut -d' ' -f19 /proc/$$/stat"};
  auto same = StdoutOf(options);
  ASSERT_TRUE(same);
  EXPECT_EQ(*same, std::to_string(::getpriority(PRIO_PROCESS, 0)) + "\n");
}

}  // namespace
}  // namespace replboot::process
