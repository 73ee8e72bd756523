// The backup server's fan-out end to end over loopback, without mysqld: the real server and
// the real replica (CloneFrom: authenticated, verified, staged, prepared, committed) against
// a fake backup tool that streams a prepared xbstream and counts its runs. What a run shares
// and what it does not: one tool run for the receivers of one window, each receiver's own
// session; a slow receiver dropped with an ERROR that says why, a receiver that leaves, a
// request after the window answered busy, the tool killed when nobody is left.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "handshake.h"
#include "net.h"
#include "replboot/base/files.h"
#include "replboot/clone/backup_server.h"
#include "replboot/clone/clone.h"
#include "replboot/testing/temp_dir.h"
#include "xbstream_test_util.h"

namespace replboot::clone {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr const char* kSecret = "fanout-test-secret";

class FanoutServerTest : public ::testing::Test {
 protected:
  // A stream of `bytes` of ibdata1 plus the checkpoints file, and the fake tool: `--version`
  // answers like mariabackup 10.11; `--prepare` marks the checkpoints log-applied; a backup
  // appends a line to runs.txt, writes its pid and streams the file.
  void MakeTool(size_t bytes) {
    backup::testing::StreamBuilder stream;
    stream.File("xtrabackup_checkpoints", "backup_type = full-backuped\n")
        .File("ibdata1", backup::testing::Pattern(bytes, 'f'));
    stream_bytes_ = stream.bytes().size();
    ibdata_bytes_ = bytes;
    ASSERT_TRUE(files::WriteFileAtomic(tmp_.Path("stream.xb"), stream.str(), 0600).ok());
    tool_ = tmp_.Path("fake-backup-tool");
    std::ofstream(tool_) << "#!/bin/sh\n"
                            "for a; do case $a in\n"
                            "  --version) echo 'mariabackup based on MariaDB server "
                            "10.11.6-MariaDB Linux (x86_64)'; exit 0;;\n"
                            "  --target-dir=*) dir=${a#--target-dir=};;\n"
                            "  --prepare) prepare=1;;\n"
                            "esac; done\n"
                            "if [ -n \"$prepare\" ]; then\n"
                            "  echo 'backup_type = log-applied' > \"$dir/xtrabackup_checkpoints\"\n"
                            "  echo 'completed OK!' >&2; exit 0\n"
                            "fi\n"
                            "echo run >> '"
                         << tmp_.Path("runs.txt") << "'\necho $$ > '" << tmp_.Path("tool.pid")
                         << "'\ncat '" << tmp_.Path("stream.xb")
                         << "' || exit 1\necho '[00] completed OK!' >&2\n";
    ::chmod(tool_.c_str(), 0755);
  }

  void StartServer(std::function<void(ServerOptions&)> tune = {}) {
    ServerOptions o;
    o.listen = {boost::asio::ip::make_address("127.0.0.1"), 0};
    o.secret = kSecret;
    o.tool = tool_;
    o.user = "nobody";
    o.socket = "/nonexistent/replboot-test.sock";
    o.work_dir = tmp_.Path("");
    o.max_concurrent = 1;
    o.fanout_window = milliseconds(1500);
    // A receiver that leaves is gone here (resume_test.cc keeps it for a resume).
    o.resume_window = milliseconds(0);
    o.idle_timeout = milliseconds(20'000);
    o.stream_header = [] {
      StreamHeader h;
      h.flavour = "mariadb";
      h.server_version = "10.11.6-MariaDB";
      h.tool = "mariabackup";
      h.tool_version = "mariabackup based on MariaDB server 10.11.6-MariaDB Linux (x86_64)";
      return Result<StreamHeader>(h);
    };
    o.probe_server_version = [] { return Result<std::string>("10.11.6-MariaDB"); };
    if (tune) tune(o);
    server_ = std::make_unique<BackupServer>(io_, o);
    ASSERT_TRUE(server_->Start().ok());
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (server_) server_->Stop();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  Endpoint Donor() const { return {boost::asio::ip::make_address("127.0.0.1"), server_->port()}; }
  CloneOptions Client(const std::string& name) {
    CloneOptions c;
    c.datadir = tmp_.Path("data-" + name);
    c.secret = kSecret;
    c.tool = tool_;
    c.client_name = name;
    c.check_free_space = false;
    c.idle_timeout = milliseconds(20'000);
    return c;
  }
  std::future<Result<CloneResult>> CloneAsync(const std::string& name) {
    return std::async(std::launch::async,
                      [this, name] { return CloneFrom(Donor(), Client(name)); });
  }
  // A receiver that authenticates, takes its HEADER and then reads nothing (yet).
  net::Socket RawReceiver(const std::string& name) {
    auto connection = ConnectAuthenticated(Donor(), HelloMode::kBackup, Client(name));
    EXPECT_TRUE(connection) << connection.error().ToString();
    net::Socket& sock = connection->socket;
    sock.SetDeadline(std::nullopt);
    auto header = sock.ReadControlFrame(milliseconds(10'000));
    EXPECT_TRUE(header) << header.error().ToString();
    if (header) {
      EXPECT_EQ(header->type, FrameType::kHeader);
    }
    return std::move(sock);
  }
  int ToolRuns() {
    auto text = files::ReadFile(tmp_.Path("runs.txt"));
    return text ? static_cast<int>(std::count(text->begin(), text->end(), '\n')) : 0;
  }
  void ExpectCloned(const Result<CloneResult>& r, const std::string& name) {
    ASSERT_TRUE(r) << name << ": " << r.error().ToString();
    EXPECT_EQ(r->bytes, stream_bytes_);
    EXPECT_EQ(std::filesystem::file_size(tmp_.Path("data-" + name) + "/ibdata1"), ibdata_bytes_);
  }
  template <typename Pred>
  bool WaitFor(Pred pred, milliseconds limit = milliseconds(10'000)) {
    const auto until = Clock::now() + limit;
    while (!pred()) {
      if (Clock::now() > until) return false;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return true;
  }

  replboot::testing::TempDir tmp_{"fanout-test"};
  boost::asio::io_context io_;
  std::unique_ptr<BackupServer> server_;
  std::thread thread_;
  std::string tool_;
  size_t stream_bytes_ = 0;
  size_t ibdata_bytes_ = 0;
};

TEST_F(FanoutServerTest, FourReceiversInOneWindowShareOneToolRunEachOverItsOwnSession) {
  MakeTool(3 << 20);
  StartServer();
  std::vector<std::future<Result<CloneResult>>> clones;
  for (int i = 1; i <= 4; ++i) {
    clones.push_back(CloneAsync("mysql-" + std::to_string(i)));
    std::this_thread::sleep_for(milliseconds(100));
  }
  std::vector<Result<CloneResult>> results;
  for (auto& c : clones) results.push_back(c.get());
  for (int i = 0; i < 4; ++i) {
    ExpectCloned(results[i], "mysql-" + std::to_string(i + 1));
    if (!results[i]) continue;
    EXPECT_EQ(results[i]->header.run_receivers, 4u);
    EXPECT_EQ(results[i]->header.run_id, results[0] ? results[0]->header.run_id : 0);
  }
  EXPECT_EQ(ToolRuns(), 1);
  EXPECT_EQ(server_->runs_started(), 1u);
  EXPECT_TRUE(WaitFor([&] { return server_->backups_served() == 4; }));
  BackupActivity activity = server_->Activity();
  EXPECT_EQ(activity.runs_started, 1u);
  EXPECT_EQ(activity.backups_served, 4u);
  EXPECT_EQ(activity.receivers_dropped, 0u);
  // The donor's NIC carried the stream four times: the counter says so.
  EXPECT_EQ(activity.stream_bytes_sent, 4 * stream_bytes_);

  // The next request opens a run of its own.
  ExpectCloned(CloneFrom(Donor(), Client("mysql-5")), "mysql-5");
  EXPECT_EQ(ToolRuns(), 2);
}

TEST_F(FanoutServerTest, WithoutAWindowEachRequestRunsTheToolAlone) {
  MakeTool(64 << 10);
  StartServer([](ServerOptions& o) { o.fanout_window = milliseconds(0); });
  ExpectCloned(CloneFrom(Donor(), Client("mysql-1")), "mysql-1");
  auto r = CloneFrom(Donor(), Client("mysql-2"));
  ExpectCloned(r, "mysql-2");
  if (r) {
    EXPECT_EQ(r->header.run_receivers, 1u);
  }
  EXPECT_EQ(ToolRuns(), 2);
}

TEST_F(FanoutServerTest, SlowReceiverIsDroppedWithAnErrorThatSaysWhyAndTheOthersFinish) {
  MakeTool(24 << 20);
  StartServer([](ServerOptions& o) {
    o.fanout_buffer_bytes = 256 << 10;
    o.fanout_grace = milliseconds(300);
  });
  auto a = CloneAsync("mysql-1");
  auto b = CloneAsync("mysql-2");
  std::this_thread::sleep_for(milliseconds(200));
  net::Socket slow = RawReceiver("mysql-9");  // joins, and has its HEADER once the run starts
  ExpectCloned(a.get(), "mysql-1");
  ExpectCloned(b.get(), "mysql-2");
  EXPECT_EQ(ToolRuns(), 1);
  EXPECT_EQ(server_->Activity().receivers_dropped, 1u);

  // The slow one reads on: its frames (each with a good tag), then the ERROR.
  std::vector<uint8_t> payload;
  std::optional<ErrorMessage> error;
  for (;;) {
    auto type = slow.ReadFrame(payload, milliseconds(10'000), /*allow_data=*/true);
    ASSERT_TRUE(type) << type.error().ToString();
    if (*type == FrameType::kData) continue;
    ASSERT_EQ(*type, FrameType::kError);
    error = DecodeErrorMessage(
        std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()));
    break;
  }
  ASSERT_TRUE(error);
  EXPECT_EQ(error->code, "dropped");
  EXPECT_NE(error->message.find("was full while mysql-"), std::string::npos)
      << error->message;
  ASSERT_TRUE(WaitFor([&] { return server_->Activity().receivers.empty(); }));
  BackupActivity activity = server_->Activity();
  ASSERT_EQ(activity.ended.size(), 1u);
  EXPECT_EQ(activity.ended[0].name, "mysql-9");
  EXPECT_EQ(activity.ended[0].state, "dropped");
  EXPECT_EQ(activity.backups_served, 2u);
}

TEST_F(FanoutServerTest, ReceiverThatLeavesMidStreamDoesNotDisturbTheOthers) {
  MakeTool(24 << 20);
  StartServer([](ServerOptions& o) { o.fanout_buffer_bytes = 256 << 10; });
  auto a = CloneAsync("mysql-1");
  auto b = CloneAsync("mysql-2");
  std::this_thread::sleep_for(milliseconds(200));
  net::Socket leaving = RawReceiver("mysql-9");
  std::vector<uint8_t> payload;
  auto first = leaving.ReadFrame(payload, milliseconds(10'000), true);
  ASSERT_TRUE(first) << first.error().ToString();
  EXPECT_EQ(*first, FrameType::kData);
  leaving.Close();
  ExpectCloned(a.get(), "mysql-1");
  ExpectCloned(b.get(), "mysql-2");
  EXPECT_EQ(ToolRuns(), 1);
  ASSERT_TRUE(WaitFor([&] { return server_->Activity().receivers.empty(); }));
  BackupActivity activity = server_->Activity();
  ASSERT_EQ(activity.ended.size(), 1u);
  EXPECT_EQ(activity.ended[0].name, "mysql-9");
  EXPECT_EQ(activity.ended[0].state, "gone");
  EXPECT_EQ(activity.ended[0].reason, "client went away");
  EXPECT_EQ(activity.receivers_dropped, 0u);
  EXPECT_EQ(activity.backups_served, 2u);
}

TEST_F(FanoutServerTest, LateRequestIsBusyAndTheToolIsKilledWhenNoReceiverIsLeft) {
  MakeTool(24 << 20);
  StartServer([](ServerOptions& o) { o.fanout_window = milliseconds(200); });
  std::optional<net::Socket> only = RawReceiver("mysql-1");
  ASSERT_TRUE(WaitFor([&] { return server_->runs_started() == 1; }));
  // The run streams (its receiver is slow): a probe says busy, a request is refused busy.
  auto probe = ProbeDonor(Donor(), Client("mysql-2"), milliseconds(5000));
  ASSERT_FALSE(probe);
  EXPECT_NE(probe.error().message().find("busy"), std::string::npos) << probe.error().message();
  auto late = CloneFrom(Donor(), Client("mysql-2"));
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code(), StatusCode::kUnavailable);
  EXPECT_NE(late.error().message().find("busy"), std::string::npos) << late.error().message();
  EXPECT_EQ(server_->active_backups(), 1);

  // The run started before the tool wrote its pid: wait for the file, not for a guess.
  Result<std::string> pid_text = Error(StatusCode::kNotFound, "tool.pid");
  ASSERT_TRUE(WaitFor([&] {
    pid_text = files::ReadFile(tmp_.Path("tool.pid"));
    return pid_text && !pid_text->empty() && pid_text->back() == '\n';
  }));
  const pid_t pid = std::stoi(*pid_text);
  only.reset();  // the last receiver leaves
  EXPECT_TRUE(WaitFor([&] { return server_->active_backups() == 0; }));
  EXPECT_TRUE(WaitFor([&] { return ::kill(pid, 0) != 0; })) << "the tool outlived its receivers";
  EXPECT_EQ(server_->backups_served(), 0u);
}

// A probe while a window is open says "not busy": the replicas that start together all pick
// this donor and join.
TEST_F(FanoutServerTest, ProbeDuringTheWindowIsNotBusy) {
  MakeTool(64 << 10);
  StartServer();
  auto first = CloneAsync("mysql-1");
  ASSERT_TRUE(WaitFor([&] { return server_->Activity().receivers.size() == 1; }));
  auto probe = ProbeDonor(Donor(), Client("mysql-2"), milliseconds(5000));
  ASSERT_TRUE(probe) << probe.error().ToString();
  EXPECT_FALSE(probe->busy);
  auto second = CloneFrom(Donor(), Client("mysql-2"));
  ExpectCloned(first.get(), "mysql-1");
  ExpectCloned(second, "mysql-2");
  EXPECT_EQ(ToolRuns(), 1);
}

}  // namespace
}  // namespace replboot::clone
