#include "replboot/base/process.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
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

}  // namespace
}  // namespace replboot::process
