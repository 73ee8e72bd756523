// The backup server's authentication and admission, end to end over loopback with the
// real client. No mysqld is needed: these paths end before the server queries it.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <atomic>
#include <filesystem>
#include <functional>
#include <fstream>
#include <optional>
#include <thread>
#include <vector>

#include "handshake.h"
#include "net.h"
#include "xbstream_test_util.h"
#include "replboot/clone/backup_server.h"
#include "replboot/clone/clone.h"
#include "replboot/testing/temp_dir.h"

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
      auto client =
          AcceptAuthenticated(sock, kSecret, nullptr, std::chrono::steady_clock::now() + t);
      if (!client) return;
      client_name_ = client->name;
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

  // A relay between the replica and the donor: the handshake (HELLO, RESPONSE one way,
  // CHALLENGE, PROOF the other) goes through untouched; the donor's tagged frames are
  // collected and passed on as `mutate` rewrites them.
  void StartRelay(std::function<void(std::vector<WireFrame>&)> mutate) {
    relay_listener_ = ListenLoopback(&relay_port_);
    relay_ = std::thread([this, mutate] {
      int down = ::accept4(relay_listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (down < 0) return;
      int up = ConnectLoopback(donor_port_);
      for (int i = 0; i < 2; ++i) {
        auto from_client = ReadWireFrame(down, false);
        if (!from_client || !WriteN(up, Encode(*from_client))) break;
        auto from_donor = ReadWireFrame(up, false);
        if (!from_donor || !WriteN(down, Encode(*from_donor))) break;
      }
      std::vector<WireFrame> frames;
      while (auto f = ReadWireFrame(up, true)) frames.push_back(std::move(*f));
      mutate(frames);
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
  std::string client_name_;
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
