// The backup server's authentication and admission, end to end over loopback with the
// real client. No mysqld is needed: these paths end before the server queries it.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include "handshake.h"
#include "net.h"
#include "replboot/clone/backup_server.h"
#include "replboot/clone/clone.h"
#include "replboot/testing/temp_dir.h"
#include "xbstream_test_util.h"

namespace replboot::clone {
namespace {

Endpoint Loopback(uint16_t port) { return {boost::asio::ip::make_address("127.0.0.1"), port}; }

class ServerTest : public ::testing::Test {
 protected:
  void StartServer(int64_t max_concurrent, std::function<void(ServerOptions&)> tune = {}) {
    ServerOptions o;
    o.listen = {boost::asio::ip::make_address("127.0.0.1"), 0};
    o.secret = "right-secret";
    o.socket = "/nonexistent/replboot-test.sock";  // the header query fails: backup_failed
    o.user = "nobody";
    o.max_concurrent = max_concurrent;
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

// A version 2 client (its HELLO byte for byte) is told which version this server speaks.
TEST_F(ServerTest, VersionTwoHelloGetsErrorProtocol) {
  StartServer(1);
  auto sock = net::Connect(Loopback(server_->port()), std::chrono::milliseconds(2000));
  ASSERT_TRUE(sock);
  const std::string v2_hello = std::string(kHelloMagic) + std::string("\0\x02\x00\x07mysql-2", 11);
  ASSERT_TRUE(sock->WriteFrame(FrameType::kHello, v2_hello, std::chrono::milliseconds(2000)).ok());
  auto frame = sock->ReadControlFrame(std::chrono::milliseconds(5000));
  ASSERT_TRUE(frame) << frame.error().ToString();
  ASSERT_EQ(frame->type, FrameType::kError);
  ErrorMessage error = DecodeErrorMessage(frame->payload);
  EXPECT_EQ(error.code, "protocol");
  EXPECT_NE(error.message.find("protocol version 2, this server speaks 3"), std::string::npos)
      << error.message;
  // The client's view of it: a refusal naming the peer and the versions.
  Status status = ServerErrorStatus(Peer(), frame->payload);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find(Peer() + " refused the connection (protocol)"), std::string::npos)
      << status.message();
}

// The server states its identity; a clone that expects another ordinal stops before its
// RESPONSE (the donor never authenticates it, so never asks its server for a backup).
TEST_F(ServerTest, CloneThatExpectsAnotherOrdinalIsRefusedByName) {
  StartServer(1, [](ServerOptions& o) {
    o.node_name = "mysql-2";
    o.node_ordinal = 2;
  });
  CloneOptions c = Client("right-secret");
  c.expected_ordinal = 1;
  auto r = CloneFrom(PeerEndpoint(), c);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(r.error().message(), Peer() + " answered as mysql-2 (ordinal 2), not as ordinal 1");
  EXPECT_EQ(server_->backups_served(), 0u);
  // The retry loop treats it like a wrong secret; the same expectation met goes further.
  RetryPolicy policy;
  policy.max_rounds = 1;
  auto retried = CloneFromPeers(
      [&] {
        return std::vector<DonorEndpoint>{{PeerEndpoint(), 1}};
      },
      Client("right-secret"), policy);
  ASSERT_FALSE(retried);
  EXPECT_NE(retried.error().message().find("answered as mysql-2 (ordinal 2)"), std::string::npos)
      << retried.error().message();
  c.expected_ordinal = 2;
  r = CloneFrom(PeerEndpoint(), c);
  ASSERT_FALSE(r);  // no mysqld behind this server
  EXPECT_NE(r.error().message().find("backup_failed"), std::string::npos) << r.error().message();
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

// Strangers that connect and trickle bytes: at most max_unauthenticated of them are let in,
// the rest closed at once and counted; each one let in is closed at the handshake deadline
// however it trickles; a real client gets through afterwards.
TEST_F(ServerTest, AdmissionCapsStrangersAndOneDeadlineEndsEachHandshake) {
  std::atomic<int> refused_callbacks{0};
  StartServer(1, [&](ServerOptions& o) {
    o.max_unauthenticated = 3;
    o.max_unauthenticated_per_address = 3;
    o.handshake_threads = 2;
    o.handshake_timeout = std::chrono::milliseconds(1500);
    o.on_connection_refused = [&] { refused_callbacks.fetch_add(1); };
  });
  const auto start = std::chrono::steady_clock::now();
  std::vector<int> strangers;
  for (int i = 0; i < 8; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(server_->port());
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    strangers.push_back(fd);
  }
  // Each sends one byte of a HELLO header every 300 ms: a per-read timeout would never fire.
  std::vector<bool> closed(strangers.size(), false);
  std::vector<double> closed_after(strangers.size(), 0);
  for (int round = 0; round < 15; ++round) {
    for (size_t i = 0; i < strangers.size(); ++i) {
      if (closed[i]) continue;
      char probe;
      ssize_t r = ::recv(strangers[i], &probe, 1, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        closed[i] = true;
        closed_after[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        continue;
      }
      const char byte = 1;
      (void)::send(strangers[i], &byte, 1, MSG_NOSIGNAL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  int admitted = 0;
  for (size_t i = 0; i < strangers.size(); ++i) {
    EXPECT_TRUE(closed[i]) << "stranger " << i << " still open after 4.5 s";
    if (closed_after[i] >= 1.2) ++admitted;
    EXPECT_LT(closed_after[i], 3.5) << "stranger " << i;
    ::close(strangers[i]);
  }
  EXPECT_EQ(admitted, 3);
  EXPECT_EQ(server_->connections_refused(), 5u);
  EXPECT_EQ(refused_callbacks.load(), 5);
  EXPECT_EQ(server_->unauthenticated_connections(), 0);
  // The server still serves: a real client authenticates (and fails later: no mysqld).
  auto r = CloneFrom(PeerEndpoint(), Client("right-secret"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("backup_failed"), std::string::npos) << r.error().message();
}

TEST(EstimateTest, CountsWhatTheToolCopiesNotLogsOrTemporaries) {
  replboot::testing::TempDir tmp{"estimate-test"};
  const std::string d = tmp.Path("datadir");
  std::filesystem::create_directories(d + "/app");
  std::filesystem::create_directories(d + "/#innodb_temp");
  std::filesystem::create_directories(d + "/binlogs");
  auto file = [&](const std::string& name, size_t size) {
    std::ofstream(d + "/" + name) << std::string(size, 'x');
  };
  // Copied: 1000 + 100 + 10 + 5 + 2000 + 50 + 7 = 3172.
  file("ibdata1", 1000);
  file("undo001", 100);
  file("aria_log.00000001", 10);
  file("aria_log_control", 5);
  file("app/t.ibd", 2000);
  file("app/t.frm", 50);
  file("app/db.opt", 7);
  // Not copied.
  file("mysql-bin.000001", 500000);
  file("mysql-bin.index", 40);
  file("mysql-1-relay-bin.000002", 70000);
  file("ib_logfile0", 5000);
  file("ibtmp1", 3000);
  file("mysql-1.err", 300);
  file("mysql-1.pid", 6);
  file("app/#sql-alter-1.ibd", 999);
  file("#innodb_temp/temp_1.ibt", 777);
  file("binlogs/log.000001", 80000);
  EXPECT_EQ(EstimateBackupBytes(d, {d + "/binlogs/log"}), 3172u);
  EXPECT_EQ(EstimateBackupBytes(d), 3172u + 80000u);  // binlogs/ looks like a database
  EXPECT_EQ(EstimateBackupBytes(tmp.Path("absent")), 0u);
}

// ---------------------------------------------------------------------------------------
// The replica against a donor that speaks the protocol (the server's own handshake code)
// and a relay on the path that tampers with the tagged frames after the handshake.

// One frame as it travels after PROOF: header, payload, tag.
struct WireFrame {
  uint8_t type;
  std::string payload;
  std::string tag;
};

// Reads exactly n bytes from a blocking descriptor; false at EOF or error.
bool ReadN(int fd, void* out, size_t n) {
  auto* p = static_cast<char*>(out);
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool WriteN(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t w = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (w <= 0) return false;
    data.remove_prefix(static_cast<size_t>(w));
  }
  return true;
}

// Reads one frame (with a tag when `tagged`) from a blocking descriptor.
std::optional<WireFrame> ReadWireFrame(int fd, bool tagged) {
  uint8_t h[kFrameHeaderSize];
  if (!ReadN(fd, h, sizeof h)) return std::nullopt;
  uint32_t len = (uint32_t{h[1]} << 24) | (uint32_t{h[2]} << 16) | (uint32_t{h[3]} << 8) | h[4];
  WireFrame f{h[0], std::string(len, '\0'), std::string(tagged ? kTagSize : 0, '\0')};
  if (!ReadN(fd, f.payload.data(), len) || !ReadN(fd, f.tag.data(), f.tag.size()))
    return std::nullopt;
  return f;
}

std::string Encode(const WireFrame& f) {
  auto h = EncodeFrameHeader(static_cast<FrameType>(f.type), static_cast<uint32_t>(f.payload.size()));
  return std::string(reinterpret_cast<const char*>(h.data()), h.size()) + f.payload + f.tag;
}

int ListenLoopback(uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::listen(fd, 8), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

int ConnectLoopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  return fd;
}

class TamperTest : public ::testing::Test {
 protected:
  static constexpr const char* kSecret = "tamper-test-secret";

  void SetUp() override {
    tool_ = tmp_.Path("local-tool");
    std::ofstream(tool_) << "#!/bin/sh\necho 'mariabackup based on MariaDB server 10.11.6-MariaDB "
                            "Linux (x86_64)'\nexit 1\n";
    ::chmod(tool_.c_str(), 0755);
    backup::testing::StreamBuilder stream;
    stream.File("ibdata1", std::string(3000, 'i'))
        .File("xtrabackup_checkpoints", "backup_type = full-backuped\n")
        .File("mysql/global_priv.MAD", std::string(2000, 'g'));
    stream_ = stream.str();
  }
  void TearDown() override {
    if (donor_.joinable()) donor_.join();
    if (relay_.joinable()) relay_.join();
    for (int fd : {donor_listener_, relay_listener_})
      if (fd >= 0) ::close(fd);
  }

  // The donor: the real server handshake, then HEADER, the stream in three DATA frames and an
  // ok TRAILER, all tagged; `pause_after_first_data` stalls it after the first DATA frame.
  void StartDonor(std::chrono::milliseconds pause_after_first_data = {}) {
    donor_listener_ = ListenLoopback(&donor_port_);
    donor_ = std::thread([this, pause_after_first_data] {
      int fd = ::accept4(donor_listener_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) return;
      net::Socket sock(fd, "replica");
      const std::chrono::milliseconds t(5000);
      auto client = AcceptAuthenticated(sock, kSecret, donor_identity_, nullptr,
                                        std::chrono::steady_clock::now() + t);
      if (!client) {
        donor_status_ = client.error();
        return;
      }
      client_name_ = client->name;
      client_ordinal_ = client->ordinal;
      StreamHeader header;
      header.flavour = "mariadb";
      header.server_version = "10.11.6-MariaDB";
      header.tool = "mariabackup";
      header.estimated_bytes = stream_.size();
      if (!sock.WriteFrame(FrameType::kHeader, EncodeStreamHeader(header), t).ok()) return;
      const size_t third = stream_.size() / 3;
      for (size_t at = 0, i = 0; at < stream_.size(); at += third, ++i) {
        if (!sock.WriteFrame(FrameType::kData, std::string_view(stream_).substr(at, third), t).ok())
          return;
        if (i == 0 && pause_after_first_data.count() > 0) {
          std::this_thread::sleep_for(pause_after_first_data);
          return;  // and goes away
        }
      }
      StreamTrailer trailer;
      trailer.exit_code = 0;
      trailer.last_line = "completed OK!";
      trailer.bytes = stream_.size();
      (void)sock.WriteFrame(FrameType::kTrailer, EncodeStreamTrailer(trailer), t);
    });
  }

  // A donor that knows the secret but checks nothing (a stand-in for a real one that saw a
  // relay's HELLO): it proves, over the HELLO as it arrived, that it is `identity`, and
  // sends a HEADER.
  void StartLenientDonor(NodeIdentity identity) {
    donor_listener_ = ListenLoopback(&donor_port_);
    donor_ = std::thread([this, identity] {
      int fd = ::accept4(donor_listener_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) return;
      net::Socket sock(fd, "replica");
      const std::chrono::milliseconds t(5000);
      auto hello = sock.ReadControlFrame(t);
      auto nonce = RandomNonce();
      if (!hello || !nonce) return;
      const std::string challenge = EncodeChallenge(*nonce, identity);
      if (!sock.WriteFrame(FrameType::kChallenge, challenge, t).ok()) return;
      auto response = sock.ReadControlFrame(t);
      if (!response || response->payload.size() != kMacSize + kNonceSize) return;
      Nonce client_nonce;
      std::memcpy(client_nonce.data(), response->payload.data() + kMacSize, kNonceSize);
      Mac proof = ServerMac(kSecret, Transcript{hello->payload, challenge, client_nonce, {}});
      (void)sock.WriteFrame(FrameType::kProof,
                            std::string_view(reinterpret_cast<const char*>(proof.data()), kMacSize),
                            t);
      (void)sock.WriteFrame(FrameType::kHeader, "{}", t);
    });
  }

  // A relay between the replica and the donor: the handshake (HELLO, RESPONSE one way,
  // CHALLENGE, PROOF the other) goes through as `handshake` rewrites it (frame 0 HELLO, 1
  // CHALLENGE, 2 RESPONSE, 3 PROOF; untouched when unset); the donor's tagged frames are
  // collected and passed on as `mutate` rewrites them.
  void StartRelay(std::function<void(std::vector<WireFrame>&)> mutate,
                  std::function<void(int, WireFrame&)> handshake = {}) {
    relay_listener_ = ListenLoopback(&relay_port_);
    relay_ = std::thread([this, mutate, handshake] {
      int down = ::accept4(relay_listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (down < 0) return;
      int up = ConnectLoopback(donor_port_);
      bool through = true;
      for (int i = 0; i < 2 && through; ++i) {
        through = false;
        auto from_client = ReadWireFrame(down, false);
        if (!from_client) break;
        if (handshake) handshake(2 * i, *from_client);
        if (!WriteN(up, Encode(*from_client))) break;
        auto from_donor = ReadWireFrame(up, false);
        if (!from_donor) break;
        if (handshake) handshake(2 * i + 1, *from_donor);
        through = WriteN(down, Encode(*from_donor));
      }
      std::vector<WireFrame> frames;
      while (through) {
        auto f = ReadWireFrame(up, true);
        if (!f) break;
        frames.push_back(std::move(*f));
      }
      if (through) mutate(frames);
      for (const auto& f : frames) WriteN(down, Encode(f));
      ::close(up);
      ::close(down);
    });
  }

  CloneOptions Client() {
    CloneOptions c;
    c.datadir = tmp_.Path("data");
    c.secret = kSecret;
    c.tool = tool_;
    c.client_name = "mysql-9";
    c.client_ordinal = 9;
    c.check_free_space = false;
    return c;
  }
  std::string RelayPeer() const { return "127.0.0.1:" + std::to_string(relay_port_); }

  // Clones through the relay: refused as an authentication failure naming the relay (the
  // replica's peer) and the stream offset; nothing kept.
  void ExpectRefusedAt(uint64_t offset) {
    auto r = CloneFrom(Loopback(relay_port_), Client());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), StatusCode::kPermissionDenied) << r.error().ToString();
    EXPECT_NE(r.error().message().find("stream from " + RelayPeer()), std::string::npos)
        << r.error().message();
    EXPECT_NE(r.error().message().find(fmt::format("refused at byte {}", offset)),
              std::string::npos)
        << r.error().message();
    EXPECT_FALSE(std::filesystem::exists(tmp_.Path("data.replboot-staging")));
    EXPECT_FALSE(std::filesystem::exists(tmp_.Path("data")));
  }

  replboot::testing::TempDir tmp_{"tamper-test"};
  std::string tool_;
  std::string stream_;
  int donor_listener_ = -1, relay_listener_ = -1;
  uint16_t donor_port_ = 0, relay_port_ = 0;
  std::thread donor_, relay_;
  NodeIdentity donor_identity_{"mysql-0", 0};  // how StartDonor's donor names itself
  std::string client_name_;
  std::optional<int64_t> client_ordinal_;
  std::optional<Status> donor_status_;  // why StartDonor's handshake failed
};

TEST_F(TamperTest, UntouchedStreamPassesEveryTagAndNamesTheReplica) {
  StartDonor();
  StartRelay([](std::vector<WireFrame>& frames) {
    ASSERT_GE(frames.size(), 5u);  // HEADER, three or four DATA, TRAILER
    EXPECT_EQ(frames.back().type, static_cast<uint8_t>(FrameType::kTrailer));
  });
  auto r = CloneFrom(Loopback(relay_port_), Client());
  // The whole stream was accepted and unpacked: only the fake --prepare fails.
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("--prepare"), std::string::npos) << r.error().message();
  donor_.join();
  EXPECT_EQ(client_name_, "mysql-9");
  EXPECT_EQ(client_ordinal_, 9);
}

// A relay that changes what the HELLO asks for (a backup turned into a probe) or who sends it:
// the donor's check of the client's MAC, over the HELLO it received, fails.
TEST_F(TamperTest, TamperedHelloFailsAtTheDonor) {
  for (int field = 0; field < 2; ++field) {
    SCOPED_TRACE(field == 0 ? "mode" : "name");
    donor_status_.reset();
    StartDonor();
    StartRelay([](std::vector<WireFrame>&) {},
               [field](int step, WireFrame& frame) {
                 if (step != 0) return;
                 const size_t mode_at = kHelloMagic.size() + 2;
                 if (field == 0) frame.payload[mode_at] = static_cast<char>(HelloMode::kProbe);
                 if (field == 1) frame.payload[mode_at + 2 + 6] = '8';  // mysql-9 → mysql-8
               });
    auto r = CloneFrom(Loopback(relay_port_), Client());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), StatusCode::kPermissionDenied) << r.error().ToString();
    EXPECT_NE(r.error().message().find("authentication failed at " + RelayPeer()),
              std::string::npos)
        << r.error().message();
    donor_.join();
    relay_.join();
    ::close(donor_listener_);
    ::close(relay_listener_);
    donor_listener_ = relay_listener_ = -1;
    ASSERT_TRUE(donor_status_);
    EXPECT_EQ(donor_status_->code(), StatusCode::kPermissionDenied) << donor_status_->ToString();
    EXPECT_FALSE(std::filesystem::exists(tmp_.Path("data.replboot-staging")));
  }
}

// The other end: had the donor taken the relay's HELLO, its PROOF (over that HELLO) does not
// verify at the replica, which sent another one.
TEST_F(TamperTest, TamperedHelloFailsAtTheReplica) {
  StartLenientDonor({"mysql-0", 0});
  StartRelay([](std::vector<WireFrame>&) {},
             [](int step, WireFrame& frame) {
               if (step == 0) frame.payload[kHelloMagic.size() + 2] = 1;  // probe
             });
  auto r = CloneFrom(Loopback(relay_port_), Client());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kPermissionDenied) << r.error().ToString();
  EXPECT_NE(r.error().message().find("the server's proof is wrong"), std::string::npos)
      << r.error().message();
  EXPECT_FALSE(std::filesystem::exists(tmp_.Path("data.replboot-staging")));
}

// The relay hands the replica's connection to mysql-2 (same secret) while the replica asked
// for mysql-1: refused by name before the replica's RESPONSE, so the donor starts nothing.
TEST_F(TamperTest, AnotherNodeBehindTheAddressIsRefusedByName) {
  donor_identity_ = {"mysql-2", 2};
  StartDonor();
  StartRelay([](std::vector<WireFrame>&) {});
  CloneOptions c = Client();
  c.expected_ordinal = 1;
  auto r = CloneFrom(Loopback(relay_port_), c);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kPermissionDenied) << r.error().ToString();
  EXPECT_EQ(r.error().message(),
            RelayPeer() + " answered as mysql-2 (ordinal 2), not as ordinal 1");
  donor_.join();
  ASSERT_TRUE(donor_status_);
  EXPECT_NE(donor_status_->code(), StatusCode::kPermissionDenied);  // it never got a RESPONSE
  EXPECT_TRUE(client_name_.empty());
  EXPECT_FALSE(std::filesystem::exists(tmp_.Path("data.replboot-staging")));
}

// ... and relabelling mysql-2's CHALLENGE as mysql-1's gets the relay no further: the MACs
// cover the CHALLENGE as each end saw it.
TEST_F(TamperTest, RelabelledChallengeFailsAuthentication) {
  donor_identity_ = {"mysql-2", 2};
  StartDonor();
  StartRelay([](std::vector<WireFrame>&) {},
             [](int step, WireFrame& frame) {
               if (step != 1) return;
               auto challenge = ParseChallenge(frame.payload);
               ASSERT_TRUE(challenge);
               frame.payload = EncodeChallenge(challenge->server_nonce, {"mysql-1", 1});
             });
  CloneOptions c = Client();
  c.expected_ordinal = 1;
  auto r = CloneFrom(Loopback(relay_port_), c);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kPermissionDenied) << r.error().ToString();
  EXPECT_NE(r.error().message().find("authentication failed at " + RelayPeer()), std::string::npos)
      << r.error().message();
  donor_.join();
  ASSERT_TRUE(donor_status_);
  EXPECT_EQ(donor_status_->code(), StatusCode::kPermissionDenied);
}

TEST_F(TamperTest, MalformedServerIdentityIsRefused) {
  StartDonor();
  StartRelay([](std::vector<WireFrame>&) {},
             [](int step, WireFrame& frame) {
               if (step == 1) frame.payload[kNonceSize + 1] = '\n';  // into the name
             });
  auto r = CloneFrom(Loopback(relay_port_), Client());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kCorruption) << r.error().ToString();
  EXPECT_NE(r.error().message().find("bad CHALLENGE"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find(RelayPeer()), std::string::npos) << r.error().message();
}

TEST_F(TamperTest, FlippedDataByteIsRefused) {
  StartDonor();
  StartRelay([](std::vector<WireFrame>& frames) { frames[2].payload[10] ^= 0x01; });
  ExpectRefusedAt(stream_.size() / 3);
}

TEST_F(TamperTest, DroppedFrameIsRefused) {
  StartDonor();
  StartRelay([](std::vector<WireFrame>& frames) { frames.erase(frames.begin() + 2); });
  ExpectRefusedAt(stream_.size() / 3);
}

TEST_F(TamperTest, ReplayedFrameIsRefused) {
  StartDonor();
  StartRelay([](std::vector<WireFrame>& frames) { frames.insert(frames.begin() + 2, frames[1]); });
  ExpectRefusedAt(stream_.size() / 3);
}

TEST_F(TamperTest, ReorderedFramesAreRefused) {
  StartDonor();
  StartRelay([](std::vector<WireFrame>& frames) { std::swap(frames[1], frames[2]); });
  ExpectRefusedAt(0);
}

TEST_F(TamperTest, SubstitutedStreamWithAForgedTrailerIsRefused) {
  StartDonor();
  // The relay keeps the real HEADER and replaces the rest: another datadir's stream, whole
  // and consistent, with a trailer that matches it. It cannot make the tags.
  StartRelay([](std::vector<WireFrame>& frames) {
    backup::testing::StreamBuilder other;
    other.File("xtrabackup_checkpoints", "backup_type = full-backuped\n")
        .File("mysql/global_priv.MAD", "attacker's root password");
    StreamTrailer trailer;
    trailer.exit_code = 0;
    trailer.last_line = "completed OK!";
    trailer.bytes = other.str().size();
    const std::string fake_tag(kTagSize, '\x42');
    frames.resize(1);
    frames.push_back({static_cast<uint8_t>(FrameType::kData), other.str(), fake_tag});
    frames.push_back(
        {static_cast<uint8_t>(FrameType::kTrailer), EncodeStreamTrailer(trailer), fake_tag});
  });
  ExpectRefusedAt(0);
}

TEST_F(TamperTest, ForgedTrailerAloneIsRefused) {
  StartDonor();
  StartRelay([](std::vector<WireFrame>& frames) {
    StreamTrailer trailer;
    trailer.exit_code = 0;
    trailer.last_line = "completed OK!";
    trailer.bytes = 0;
    // The real trailer's tag on other contents.
    frames.back().payload = EncodeStreamTrailer(trailer);
  });
  ExpectRefusedAt(stream_.size());  // every DATA byte arrived; the trailer did not verify
}

// A donor that stops sending shows as stalled (rate 0, no ETA) within a few seconds.
TEST_F(TamperTest, StalledDonorIsReportedAsStalled) {
  StartDonor(std::chrono::milliseconds(4000));
  std::vector<CloneProgressEvent> events;
  CloneOptions c = Client();
  c.progress_report_interval = std::chrono::milliseconds(200);
  c.on_progress = [&](const CloneProgressEvent& e) { events.push_back(e); };
  auto r = CloneFrom(Loopback(donor_port_), c);
  ASSERT_FALSE(r);
  std::optional<CloneProgressEvent> stalled;
  bool moving_before = false;
  for (const auto& e : events) {
    if (e.phase != "streaming") continue;
    if (!e.stalled_seconds && e.bytes > 0) moving_before = true;
    if (e.stalled_seconds && !stalled) stalled = e;
  }
  ASSERT_TRUE(stalled) << "no stalled report in " << events.size() << " events";
  EXPECT_GE(*stalled->stalled_seconds, 2.0);
  EXPECT_LT(*stalled->stalled_seconds, 3.5);
  EXPECT_EQ(stalled->bytes_per_second, 0);
  EXPECT_FALSE(stalled->eta_seconds);
  EXPECT_GT(stalled->bytes, 0u);
  EXPECT_TRUE(moving_before);
}

}  // namespace
}  // namespace replboot::clone

namespace replboot::clone {
namespace {

TEST(FrameSendDeadlineTest, TenSecondsPlusTheFrameAtTheFloorRateCappedByIdleTimeout) {
  using std::chrono::milliseconds;
  const milliseconds idle(300'000);
  EXPECT_EQ(FrameSendDeadline(1 << 20, 256 << 10, idle), milliseconds(14'000));
  EXPECT_EQ(FrameSendDeadline(0, 256 << 10, idle), kFrameSendSlack);
  EXPECT_EQ(FrameSendDeadline(1 << 20, 1, idle), idle);   // the idle timeout still caps it
  EXPECT_EQ(FrameSendDeadline(1 << 20, 0, idle), idle);   // floor off
}

}  // namespace
}  // namespace replboot::clone
