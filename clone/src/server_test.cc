// The backup server's authentication and admission, end to end over loopback with the
// real client. No mysqld is needed: these paths end before the server queries it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <thread>

#include "net.h"
#include "replboot/clone/backup_server.h"
#include "replboot/clone/clone.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::clone {
namespace {

Endpoint Loopback(uint16_t port) { return {boost::asio::ip::make_address("127.0.0.1"), port}; }

class ServerTest : public ::testing::Test {
 protected:
  void StartServer(int64_t max_concurrent) {
    ServerOptions o;
    o.listen = {boost::asio::ip::make_address("127.0.0.1"), 0};
    o.secret = "right-secret";
    o.socket = "/nonexistent/replboot-test.sock";  // the header query fails: backup_failed
    o.user = "nobody";
    o.max_concurrent = max_concurrent;
    server_ = std::make_unique<BackupServer>(io_, o);
    ASSERT_TRUE(server_->Start().ok());
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (server_) server_->Stop();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }
  CloneOptions Client(const std::string& secret) {
    CloneOptions c;
    c.datadir = tmp_.Path("data");
    c.secret = secret;
    c.handshake_timeout = std::chrono::milliseconds(5000);
    return c;
  }
  std::string Peer() { return "127.0.0.1:" + std::to_string(server_->port()); }
  Endpoint PeerEndpoint() { return Loopback(server_->port()); }

  // Declared first, so removed last: after the server and its thread are gone.
  replboot::testing::TempDir tmp_{"server-test"};
  boost::asio::io_context io_;
  std::unique_ptr<BackupServer> server_;
  std::thread thread_;
};

TEST_F(ServerTest, WrongSecretIsRefused) {
  StartServer(1);
  auto r = CloneFrom(PeerEndpoint(), Client("wrong-secret"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(r.error().message().find("authentication failed at 127.0.0.1:"), std::string::npos)
      << r.error().message();
  EXPECT_FALSE(std::filesystem::exists(tmp_.Path("data.replboot-staging")));
}

TEST_F(ServerTest, RightSecretPassesAuthentication) {
  StartServer(1);
  auto r = CloneFrom(PeerEndpoint(), Client("right-secret"));
  ASSERT_FALSE(r);  // no mysqld behind this server
  EXPECT_EQ(r.error().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.error().message().find("backup_failed"), std::string::npos) << r.error().message();
  EXPECT_FALSE(std::filesystem::exists(tmp_.Path("data.replboot-staging")));
}

TEST_F(ServerTest, BusyPastMaxConcurrent) {
  StartServer(0);
  auto r = CloneFrom(PeerEndpoint(), Client("right-secret"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.error().message().find("busy"), std::string::npos) << r.error().message();
}

TEST_F(ServerTest, GarbageClientIsDropped) {
  StartServer(1);
  auto sock = net::Connect(Loopback(server_->port()), std::chrono::milliseconds(2000));
  ASSERT_TRUE(sock);
  ASSERT_TRUE(
      sock->WriteAll("GET / HTTP/1.1\r\nHost: x\r\n\r\n", std::chrono::milliseconds(2000)).ok());
  char buf[64];
  auto n = sock->ReadSome(buf, sizeof buf, std::chrono::milliseconds(5000));
  // Either closed outright or closed after nothing useful: never a challenge.
  if (n && *n > 0) {
    EXPECT_NE(static_cast<uint8_t>(buf[0]), static_cast<uint8_t>(FrameType::kChallenge));
  }
}

}  // namespace
}  // namespace replboot::clone
