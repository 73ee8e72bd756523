// The backup server's admission before authentication under a flood, over loopback with a
// real BackupServer and the real probe client. Every 127.x address is loopback on Linux:
// the flood comes from 127.0.0.99 (and .98), the probes from 127.0.0.1. No mysqld: the
// probe's version query is the probe_server_version seam.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "replboot/clone/backup_server.h"
#include "replboot/clone/clone.h"
#include "replboot/clone/prober.h"
#include "replboot/clone/protocol.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::clone {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// A client socket from `source`, connected (blocking) to 127.0.0.1:port; -1 on failure.
int ConnectFrom(const char* source, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &from.sin_addr);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Waits until the server has closed `fd` (EOF or reset, after whatever it sent first, such
// as a CHALLENGE) or `until` passes; true when it was closed.
bool ClosedBy(int fd, Clock::time_point until) {
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(left, 0))) != 1) return false;
    char buf[256];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return true;
  }
}

template <typename Pred>
bool Eventually(Pred pred, milliseconds within) {
  const auto until = Clock::now() + within;
  while (!pred()) {
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return true;
}

class AdmissionTest : public ::testing::Test {
 protected:
  void StartServer(const std::function<void(ServerOptions&)>& tune) {
    ServerOptions o;
    o.listen = {asio::ip::make_address("127.0.0.1"), 0};
    o.secret = "right-secret-of-16+";
    o.socket = "/nonexistent/replboot-test.sock";
    o.user = "nobody";
    o.work_dir = tmp_.path();
    o.probe_server_version = []() -> Result<std::string> { return std::string("10.11.6-MariaDB"); };
    o.node_name = "mysql-0";  // what the prober's candidate 0 expects
    o.node_ordinal = 0;
    tune(o);
    server_ = std::make_unique<BackupServer>(io_, o);
    ASSERT_TRUE(server_->Start().ok());
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    for (int fd : fds_) ::close(fd);
    if (server_) server_->Stop();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }
  int Open(const char* source) {
    int fd = ConnectFrom(source, server_->port());
    EXPECT_GE(fd, 0) << "connect from " << source << ": " << std::strerror(errno);
    fds_.push_back(fd);
    return fd;
  }
  CloneOptions Client() {
    CloneOptions c;
    c.datadir = tmp_.Path("data");
    c.secret = "right-secret-of-16+";
    return c;
  }
  Endpoint Server() const { return {asio::ip::make_address("127.0.0.1"), server_->port()}; }

  replboot::testing::TempDir tmp_{"admission-test"};
  asio::io_context io_;
  std::unique_ptr<BackupServer> server_;
  std::thread thread_;
  std::vector<int> fds_;
};

// Idle connections and slowloris ones (a HELLO, then nothing) from one address, as many as
// its cap allows and more: the surplus is closed at once; the idle ones cost no thread; the
// slowloris ones hold only half of the handshake threads. A probe from another address is
// answered at once, well within its 3 s deadline, while the flood holds; then every
// connection of the flood is closed at its handshake deadline.
TEST_F(AdmissionTest, FloodFromOneAddressLeavesRoomForProbes) {
  StartServer([](ServerOptions& o) {
    o.max_unauthenticated = 32;
    o.max_unauthenticated_per_address = 12;
    o.handshake_threads = 4;
    o.handshake_timeout = milliseconds(1500);
  });
  EXPECT_EQ(server_->threads_per_address(), 2);
  const auto start = Clock::now();
  std::vector<int> admitted;
  for (int i = 0; i < 8; ++i) admitted.push_back(Open("127.0.0.99"));
  const std::string hello = EncodeFrame(FrameType::kHello, EncodeHello(HelloMode::kProbe, NodeIdentity{.name = "x", .ordinal = std::nullopt}));
  for (int i = 0; i < 4; ++i) {
    int fd = Open("127.0.0.99");
    ASSERT_EQ(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(hello.size()));
    admitted.push_back(fd);
  }
  std::vector<int> surplus;
  for (int i = 0; i < 4; ++i) surplus.push_back(Open("127.0.0.99"));
  for (int fd : surplus) {
    EXPECT_TRUE(ClosedBy(fd, Clock::now() + milliseconds(500))) << "surplus still open";
  }
  // Counted just after the close the client saw.
  EXPECT_TRUE(Eventually([&] { return server_->connections_refused() == 4; }, milliseconds(500)))
      << server_->connections_refused();
  // Two of the slowloris connections are on threads, waiting for a RESPONSE; the other two
  // wait on the io_context for a thread of their address; the idle ones for their HELLO.
  EXPECT_TRUE(Eventually([&] { return server_->threaded_handshakes() == 2; }, milliseconds(1000)))
      << server_->threaded_handshakes();
  EXPECT_EQ(server_->unauthenticated_connections(), 12);

  for (int round = 0; round < 2; ++round) {
    const auto asked = Clock::now();
    auto info = ProbePeer(Server(), Client(), milliseconds(3000));
    const auto took = Clock::now() - asked;
    ASSERT_TRUE(info) << info.error().ToString();
    EXPECT_EQ(info->server_version, "10.11.6-MariaDB");
    EXPECT_LT(took, milliseconds(1000)) << "probe " << round << " waited for the flood";
  }
  EXPECT_EQ(server_->probes_answered(), 2u);
  // The probes did not end the flood early: it is still held, then closed at its deadline.
  EXPECT_LT(Clock::now() - start, milliseconds(1200));
  EXPECT_EQ(server_->unauthenticated_connections(), 12);
  for (size_t i = 0; i < admitted.size(); ++i) {
    EXPECT_TRUE(ClosedBy(admitted[i], start + milliseconds(3000))) << "connection " << i;
    EXPECT_GE(Clock::now() - start, milliseconds(1400)) << "connection " << i << " closed early";
  }
  EXPECT_LT(Clock::now() - start, milliseconds(2500));
  EXPECT_TRUE(Eventually([&] { return server_->unauthenticated_connections() == 0; },
                         milliseconds(500)));
  EXPECT_EQ(server_->threaded_handshakes(), 0);
  EXPECT_EQ(server_->connections_refused(), 4u);
}

// Connections that trickle the first message one byte at a time never reach a thread: a
// probe right behind them is answered even with a single handshake thread.
TEST_F(AdmissionTest, TricklingFirstMessagesHoldNoThread) {
  StartServer([](ServerOptions& o) {
    o.max_unauthenticated = 16;
    o.max_unauthenticated_per_address = 8;
    o.handshake_threads = 1;
    o.handshake_timeout = milliseconds(1500);
  });
  const std::string hello = EncodeFrame(FrameType::kHello, EncodeHello(HelloMode::kProbe, NodeIdentity{.name = "x", .ordinal = std::nullopt}));
  std::vector<int> trickling;
  for (int i = 0; i < 8; ++i) trickling.push_back(Open("127.0.0.99"));
  for (size_t byte = 0; byte + 1 < hello.size() && byte < 4; ++byte) {
    for (int fd : trickling) (void)::send(fd, &hello[byte], 1, MSG_NOSIGNAL);
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(server_->threaded_handshakes(), 0);
  auto info = ProbePeer(Server(), Client(), milliseconds(3000));
  ASSERT_TRUE(info) << info.error().ToString();
  for (int fd : trickling) EXPECT_TRUE(ClosedBy(fd, Clock::now() + milliseconds(2500)));
}

// A probe refused at once (the overall cap is full) is tried again within its budget, and
// gets in once a slot is free: one refused connection during a flood is not a silent peer.
TEST_F(AdmissionTest, ProberRetriesAConnectionRefusedBeforeAuthentication) {
  StartServer([](ServerOptions& o) {
    o.max_unauthenticated = 2;
    o.max_unauthenticated_per_address = 1;
    o.handshake_timeout = milliseconds(2000);
  });
  int first = Open("127.0.0.98");
  Open("127.0.0.99");
  ASSERT_TRUE(
      Eventually([&] { return server_->unauthenticated_connections() == 2; }, milliseconds(1000)));
  std::thread release([first] {
    std::this_thread::sleep_for(milliseconds(150));
    ::shutdown(first, SHUT_RDWR);  // the server sees EOF and frees its slot
  });
  AuthenticatedProber prober(Client(), milliseconds(3000));
  asio::io_context io;
  auto status = asio::co_spawn(io, prober.Probe({0, "mysql-0.mysql"}, Server()), asio::use_future);
  io.run();
  release.join();
  Status s = status.get();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_GE(server_->connections_refused(), 1u);
  EXPECT_EQ(server_->probes_answered(), 1u);
}

// A wrong secret is an answer: the prober does not try again.
TEST_F(AdmissionTest, ProberDoesNotRetryAFailedAuthentication) {
  StartServer([](ServerOptions& o) { o.handshake_timeout = milliseconds(2000); });
  CloneOptions wrong = Client();
  wrong.secret = "wrong-secret-of-16+";
  AuthenticatedProber prober(wrong, milliseconds(3000));
  asio::io_context io;
  auto status = asio::co_spawn(io, prober.Probe({0, "mysql-0.mysql"}, Server()), asio::use_future);
  io.run();
  Status s = status.get();
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.ToString();
  // The client reads the server's auth_failed before the server counts it.
  EXPECT_TRUE(
      Eventually([&] { return server_->authentications_failed() >= 1; }, milliseconds(1000)));
  std::this_thread::sleep_for(milliseconds(400));  // past every backoff a retry would wait
  EXPECT_EQ(server_->authentications_failed(), 1u);
}

}  // namespace
}  // namespace replboot::clone
