// Compression on the wire end to end over loopback, without mysqld: the real BackupServer (a
// fake backup tool streams a prepared xbstream) and the real replica (CloneFrom: verified,
// staged, prepared, committed); a donor that predates version 4 (a relay that refuses the
// version 4 HELLO as such a donor does, then passes the connection through); and a hostile
// donor that holds the secret and sends ZDATA frames of its own making: a wrong tag (refused
// before anything is decompressed), a zip bomb, a truncated zstd frame, ZDATA without a grant,
// a grant that was not asked for.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
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

constexpr const char* kSecret = "compress-test-secret";

Endpoint Loopback(uint16_t port) { return {boost::asio::ip::make_address("127.0.0.1"), port}; }

// A listening socket on 127.0.0.1 with a free port.
int Listen(uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::listen(fd, 8), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

std::string Compressible(size_t n) {
  std::string out(n, '\0');
  const std::string words = "InnoDB pages of a sysbench table, row after row; ";
  for (size_t i = 0; i < n; ++i) out[i] = words[(i * 7 + i / 131) % words.size()];
  return out;
}

class CompressTest : public ::testing::Test {
 protected:
  // As server_fanout_test's fake tool: --version answers like mariabackup 10.11, --prepare
  // marks the checkpoints log-applied, a backup streams the file.
  void MakeTool(size_t bytes) {
    backup::testing::StreamBuilder stream;
    stream.File("xtrabackup_checkpoints", "backup_type = full-backuped\n")
        .File("ibdata1", Compressible(bytes));
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
                            "cat '"
                         << tmp_.Path("stream.xb") << "' || exit 1\necho '[00] completed OK!' >&2\n";
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
    o.fanout_window = milliseconds(0);
    o.idle_timeout = milliseconds(20'000);
    o.cpus = 4;
    o.parallel = 1;
    o.stream_header = [] {
      StreamHeader h;
      h.flavour = "mariadb";
      h.server_version = "10.11.6-MariaDB";
      h.tool = "mariabackup";
      h.tool_version = "mariabackup based on MariaDB server 10.11.6-MariaDB Linux (x86_64)";
      return Result<StreamHeader>(h);
    };
    if (tune) tune(o);
    server_ = std::make_unique<BackupServer>(io_, o);
    ASSERT_TRUE(server_->Start().ok());
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (server_) server_->Stop();
    io_.stop();
    if (thread_.joinable()) thread_.join();
    if (fake_.joinable()) fake_.join();
  }
  CloneOptions Client(const std::string& name, CompressRequest compress) {
    CloneOptions c;
    c.datadir = tmp_.Path("data-" + name);
    c.secret = kSecret;
    c.tool = tool_.empty() ? std::string("/bin/false") : tool_;
    c.client_name = name;
    c.check_free_space = false;
    c.idle_timeout = milliseconds(10'000);
    c.compress = compress;
    return c;
  }
  void ExpectCloned(const Result<CloneResult>& r, const std::string& name) {
    ASSERT_TRUE(r) << name << ": " << r.error().ToString();
    EXPECT_EQ(r->bytes, stream_bytes_);
    EXPECT_EQ(std::filesystem::file_size(tmp_.Path("data-" + name) + "/ibdata1"), ibdata_bytes_);
    auto text = files::ReadFile(tmp_.Path("data-" + name) + "/ibdata1");
    ASSERT_TRUE(text);
    EXPECT_TRUE(*text == Compressible(ibdata_bytes_));
  }

  // A hostile donor: one connection, authenticated with the secret, then HEADER (with
  // `header`) and whatever `send` writes.
  void FakeDonor(StreamHeader header, std::function<void(net::Socket&)> send) {
    MakeTool(1024);  // the replica's own tool (--version for its pre-flight)
    int listener = Listen(&fake_port_);
    fake_ = std::thread([this, listener, header, send] {
      int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      ::close(listener);
      if (fd < 0) return;
      net::Socket sock(fd, "client");
      auto client = AcceptAuthenticated(sock, kSecret, {}, nullptr,
                                        std::chrono::steady_clock::now() + milliseconds(5000));
      if (!client) return;
      fake_asked_ = client->compress;
      if (!sock.WriteFrame(FrameType::kHeader, EncodeStreamHeader(header), milliseconds(5000)).ok())
        return;
      send(sock);
      // Wait for the receiver to give up and close.
      pollfd p{sock.fd(), POLLIN, 0};
      ::poll(&p, 1, 5000);
    });
  }
  static StreamHeader Granted(const char* mode, int level) {
    StreamHeader h;
    h.flavour = "mariadb";
    h.server_version = "10.11.6-MariaDB";
    h.tool = "mariabackup";
    h.compression = mode;
    h.compression_level = level;
    return h;
  }
  // A tagged frame of any type and payload size (WriteFrame is for control frames).
  static Status Send(net::Socket& sock, FrameType type, const std::vector<uint8_t>& payload) {
    std::vector<uint8_t> buffer(kFrameHeaderSize + payload.size() + kTagSize);
    std::copy(payload.begin(), payload.end(), buffer.begin() + kFrameHeaderSize);
    return sock.WriteFrameBuffer(type, buffer, payload.size(), milliseconds(5000));
  }
  // With the window a donor may use (1 MiB), whatever the size: a bomb that passes the
  // window check.
  static std::vector<uint8_t> Zstd(const std::string& in, bool content_size) {
    ZSTD_CCtx* c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, content_size ? 1 : 0);
    ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, kMaxWindowLog);
    std::vector<uint8_t> out(ZSTD_compressBound(in.size()));
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    ZSTD_outBuffer ob{out.data(), out.size(), 0};
    while (ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_end) != 0) {
    }
    out.resize(ob.pos);
    ZSTD_freeCCtx(c);
    return out;
  }

  replboot::testing::TempDir tmp_{"compress-test"};
  boost::asio::io_context io_;
  std::unique_ptr<BackupServer> server_;
  std::thread thread_;
  std::thread fake_;
  uint16_t fake_port_ = 0;
  CompressRequest fake_asked_;
  std::string tool_;
  size_t stream_bytes_ = 0;
  size_t ibdata_bytes_ = 0;
};

const CompressRequest kOff{};
const CompressRequest kAuto{CompressMode::kAuto, 0};
const CompressRequest kZstd3{CompressMode::kZstd, 3};

TEST_F(CompressTest, ZstdCloneCommitsTheStreamFromFewerWireBytes) {
  MakeTool(6 << 20);
  StartServer();
  auto r = CloneFrom(Loopback(server_->port()), Client("mysql-1", CompressRequest{CompressMode::kZstd, 9}));
  ExpectCloned(r, "mysql-1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header.compression, "zstd");
  EXPECT_EQ(r->header.compression_level, kMaxGrantedLevel);  // 9 asked, at most 3 granted
  EXPECT_GT(r->wire_bytes, 0u);
  EXPECT_LT(r->wire_bytes * 3, r->bytes);
  BackupActivity a = server_->Activity();
  EXPECT_EQ(a.stream_bytes_sent, stream_bytes_);
  EXPECT_EQ(a.wire_bytes_sent, r->wire_bytes);
}

// What an older replica sends (a version 3 HELLO, compression off): plain DATA, as before.
TEST_F(CompressTest, OldReceiverGetsPlainData) {
  MakeTool(2 << 20);
  StartServer();
  auto r = CloneFrom(Loopback(server_->port()), Client("mysql-1", kOff));
  ExpectCloned(r, "mysql-1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header.compression, "off");
  EXPECT_EQ(r->wire_bytes, r->bytes);
  EXPECT_EQ(server_->Activity().wire_bytes_sent, stream_bytes_);
}

// A donor without a CPU to spare grants none, whatever was asked.
TEST_F(CompressTest, DonorWithoutCpuToSpareGrantsNone) {
  MakeTool(1 << 20);
  StartServer([](ServerOptions& o) {
    o.cpus = 2;
    o.parallel = 2;
  });
  auto r = CloneFrom(Loopback(server_->port()), Client("mysql-1", kZstd3));
  ExpectCloned(r, "mysql-1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header.compression, "off");
  EXPECT_EQ(r->wire_bytes, r->bytes);
}

// auto on an unlimited loopback link with a receiver that keeps up: the run starts off and
// stays there unless a window says it is link-bound; either way the stream commits whole.
TEST_F(CompressTest, AutoCloneCommits) {
  MakeTool(8 << 20);
  StartServer();
  auto r = CloneFrom(Loopback(server_->port()), Client("mysql-1", kAuto));
  ExpectCloned(r, "mysql-1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header.compression, "auto");
  EXPECT_EQ(r->header.compression_level, kMaxGrantedLevel);
  EXPECT_LE(r->wire_bytes, r->bytes);
}

// A donor from before version 4 refuses the version 4 HELLO with ERROR protocol: the replica
// connects again with a version 3 HELLO, without compression, and the clone goes through. The
// relay plays that donor: it refuses the first connection as it would, then passes the next
// one through to a real server, which sees a version 3 HELLO.
TEST_F(CompressTest, OldDonorRefusesVersionFourAndTheCloneFallsBackToVersionThree) {
  MakeTool(2 << 20);
  StartServer();
  uint16_t relay_port = 0;
  int listener = Listen(&relay_port);
  std::atomic<int> v4_refused{0};
  std::atomic<int> v3_relayed{0};
  const uint16_t real_port = server_->port();
  fake_ = std::thread([&, listener, real_port] {
    for (int n = 0; n < 2; ++n) {
      int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) break;
      uint8_t header[kFrameHeaderSize];
      if (::recv(fd, header, sizeof header, MSG_WAITALL) != static_cast<ssize_t>(sizeof header)) {
        ::close(fd);
        break;
      }
      const uint32_t length = (uint32_t{header[1]} << 24) | (uint32_t{header[2]} << 16) |
                              (uint32_t{header[3]} << 8) | header[4];
      std::string hello(length, '\0');
      ::recv(fd, hello.data(), length, MSG_WAITALL);
      const int version = static_cast<uint8_t>(hello[kHelloMagic.size() + 1]);
      if (version != 3) {
        // As a version 3 server answers it (ParseHello there, ERROR protocol).
        const std::string error = EncodeFrame(
            FrameType::kError,
            EncodeErrorMessage({"protocol", "client speaks protocol version 4, this server "
                                            "speaks 3"}));
        (void)!::send(fd, error.data(), error.size(), MSG_NOSIGNAL);
        ++v4_refused;
        ::close(fd);
        continue;
      }
      ++v3_relayed;
      int up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(real_port);
      if (::connect(up, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) break;
      (void)!::send(up, header, sizeof header, MSG_NOSIGNAL);
      (void)!::send(up, hello.data(), hello.size(), MSG_NOSIGNAL);
      pollfd fds[2] = {{fd, POLLIN, 0}, {up, POLLIN, 0}};
      char buf[64 << 10];
      bool open = true;
      while (open && ::poll(fds, 2, 10'000) > 0) {
        for (int i = 0; i < 2 && open; ++i) {
          if (fds[i].revents == 0) continue;
          ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
          if (got <= 0 || ::send(fds[1 - i].fd, buf, static_cast<size_t>(got), MSG_NOSIGNAL) != got)
            open = false;
        }
      }
      ::close(up);
      ::close(fd);
    }
    ::close(listener);
  });
  auto r = CloneFrom(Loopback(relay_port), Client("mysql-1", kAuto));
  ExpectCloned(r, "mysql-1");
  ASSERT_TRUE(r);
  EXPECT_EQ(v4_refused.load(), 1);
  EXPECT_EQ(v3_relayed.load(), 1);
  EXPECT_EQ(r->header.compression, "off");
  EXPECT_EQ(r->wire_bytes, r->bytes);
}

// The tag is checked before a byte is decompressed: a zip bomb under a wrong tag fails as an
// authentication failure, never as what decompressing it would find.
TEST_F(CompressTest, WrongTagFailsBeforeDecompression) {
  const std::vector<uint8_t> bomb = Zstd(std::string(256u << 20, '\0'), false);
  FakeDonor(Granted("zstd", 1), [&](net::Socket& sock) {
    auto header = EncodeFrameHeader(FrameType::kZData, static_cast<uint32_t>(bomb.size()));
    std::string raw(reinterpret_cast<const char*>(header.data()), header.size());
    raw.append(reinterpret_cast<const char*>(bomb.data()), bomb.size());
    raw.append(kTagSize, '\x5a');  // not the tag of this frame
    (void)sock.WriteAll(raw, milliseconds(5000));
  });
  auto r = CloneFrom(Loopback(fake_port_), Client("mysql-1", kZstd3));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kPermissionDenied) << r.error().ToString();
  EXPECT_NE(r.error().message().find("ZDATA frame #1"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("wrong tag"), std::string::npos) << r.error().message();
  EXPECT_EQ(r.error().message().find("decompresses"), std::string::npos) << r.error().message();
  EXPECT_EQ(fake_asked_, kZstd3);  // what the HELLO asked reached the donor
  EXPECT_FALSE(std::filesystem::exists(tmp_.Path("data-mysql-1.replboot-staging")));
}

TEST_F(CompressTest, TaggedZipBombIsRefusedByName) {
  FakeDonor(Granted("zstd", 1), [&](net::Socket& sock) {
    (void)Send(sock, FrameType::kZData, Zstd(std::string(64u << 20, '\0'), false));
  });
  auto r = CloneFrom(Loopback(fake_port_), Client("mysql-1", kZstd3));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kCorruption) << r.error().ToString();
  // Numbered as the tags count frames: HEADER #0, this one #1.
  EXPECT_NE(r.error().message().find("ZDATA frame #1"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("decompresses past 1048576 bytes"), std::string::npos)
      << r.error().message();
  EXPECT_FALSE(std::filesystem::exists(tmp_.Path("data-mysql-1.replboot-staging")));
}

TEST_F(CompressTest, TruncatedZstdFrameIsRefused) {
  FakeDonor(Granted("auto", 3), [&](net::Socket& sock) {
    std::vector<uint8_t> frame = Zstd(Compressible(100'000), true);
    frame.resize(frame.size() - 4);
    (void)Send(sock, FrameType::kZData, frame);
  });
  auto r = CloneFrom(Loopback(fake_port_), Client("mysql-1", kAuto));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kCorruption) << r.error().ToString();
  EXPECT_NE(r.error().message().find("ends inside a zstd frame (truncated)"), std::string::npos)
      << r.error().message();
}

TEST_F(CompressTest, ZDataWithoutAGrantIsRefused) {
  FakeDonor(Granted("off", 0), [&](net::Socket& sock) {
    (void)Send(sock, FrameType::kZData, Zstd(Compressible(1000), true));
  });
  auto r = CloneFrom(Loopback(fake_port_), Client("mysql-1", kAuto));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kCorruption) << r.error().ToString();
  EXPECT_NE(r.error().message().find("granted no compression"), std::string::npos)
      << r.error().message();
}

TEST_F(CompressTest, GrantThatWasNotAskedIsRefused) {
  FakeDonor(Granted("zstd", 3), [](net::Socket&) {});
  auto r = CloneFrom(Loopback(fake_port_), Client("mysql-1", CompressRequest{CompressMode::kZstd, 1}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kCorruption) << r.error().ToString();
  EXPECT_NE(r.error().message().find("granted compression zstd at level 3, but zstd:1 was asked"),
            std::string::npos)
      << r.error().message();
}

}  // namespace
}  // namespace replboot::clone
