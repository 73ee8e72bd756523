// net::Socket over TLS: a round trip through a socketpair with a throwaway CA, the channel
// binding both ends agree on, and the clear errors of a certificate nobody trusts.
#include "net.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <future>
#include <thread>
#include <random>

#include "tls_test_util.h"

namespace replboot::clone::net {
namespace {

using std::chrono::milliseconds;
constexpr milliseconds kTimeout{20'000};  // generous: the CI machine is busy

class TlsSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = MakeTestPki();
    ASSERT_TRUE(pki) << pki.error().ToString();
    pki_ = std::move(*pki);
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    server_ = Socket(fds[0], "client-end");
    client_ = Socket(fds[1], "server-end");
  }
  std::shared_ptr<const TlsContext> Context(const TlsOptions& o, TlsContext::Role role) {
    auto c = TlsContext::Create(o, role);
    EXPECT_TRUE(c) << c.error().ToString();
    return c ? *c : nullptr;
  }

  std::unique_ptr<TestPki> pki_;
  Socket server_;
  Socket client_;
};

TEST_F(TlsSocketTest, RoundTripWithMutualVerificationAndChannelBinding) {
  auto server_ctx = Context(pki_->server, TlsContext::Role::kServer);
  auto client_ctx = Context(pki_->client, TlsContext::Role::kClient);
  ASSERT_TRUE(server_ctx && client_ctx);
  // 3 MiB: many TLS records, partial writes and WANT_WRITE on the socketpair's small buffer.
  std::string payload(3 << 20, '\0');
  std::mt19937 random(7);
  for (auto& c : payload) c = static_cast<char>(random());
  auto server = std::async(std::launch::async, [&]() -> Status {
    if (Status s = server_.StartTls(*server_ctx, kTimeout); !s.ok()) return s;
    std::string got(payload.size(), '\0');
    if (Status s = server_.ReadExact(got.data(), got.size(), kTimeout); !s.ok()) return s;
    if (got != payload) return Status(StatusCode::kCorruption, "payload differs");
    return server_.WriteFrame(FrameType::kTrailer, "{}", kTimeout);
  });
  ASSERT_TRUE(client_.StartTls(*client_ctx, kTimeout).ok());
  EXPECT_TRUE(client_.tls());
  ASSERT_TRUE(client_.WriteAll(payload, kTimeout).ok());
  auto frame = client_.ReadControlFrame(kTimeout);
  ASSERT_TRUE(frame) << frame.error().ToString();
  EXPECT_EQ(frame->type, FrameType::kTrailer);
  Status s = server.get();
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto a = client_.ChannelBinding();
  auto b = server_.ChannelBinding();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->size(), kChannelBindingSize);
  EXPECT_EQ(*a, *b);
  // Orderly close: the peer reads EOF, as on a plain socket.
  client_.Close();
  char byte;
  auto n = server_.ReadSome(&byte, 1, kTimeout);
  ASSERT_TRUE(n) << n.error().ToString();
  EXPECT_EQ(*n, 0u);
}

// OpenSSL writes with write(2): into a connection the peer closed that raises SIGPIPE, which
// (default disposition) would kill the process. The socket blocks it around SSL calls and
// consumes it, so the write is an error value and nothing is left pending.
TEST_F(TlsSocketTest, WritingToAClosedPeerIsAnErrorNotASignal) {
  struct sigaction old {};
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ASSERT_EQ(::sigaction(SIGPIPE, &dfl, &old), 0);
  auto server_ctx = Context(pki_->server, TlsContext::Role::kServer);
  auto client_ctx = Context(pki_->client, TlsContext::Role::kClient);
  ASSERT_TRUE(server_ctx && client_ctx);
  auto server = std::async(std::launch::async,
                           [&]() -> Status { return server_.StartTls(*server_ctx, kTimeout); });
  ASSERT_TRUE(client_.StartTls(*client_ctx, kTimeout).ok());
  ASSERT_TRUE(server.get().ok());
  server_.Close();
  Status s;
  for (int i = 0; i < 20 && s.ok(); ++i) s = client_.WriteAll(std::string(1 << 20, 'x'), kTimeout);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  client_.Close();  // SSL_shutdown writes too
  sigset_t pending;
  sigpending(&pending);
  EXPECT_EQ(sigismember(&pending, SIGPIPE), 0);
  ::sigaction(SIGPIPE, &old, nullptr);
}

TEST_F(TlsSocketTest, PlainSocketHasNoChannelBinding) {
  auto binding = client_.ChannelBinding();
  ASSERT_TRUE(binding);
  EXPECT_TRUE(binding->empty());
  EXPECT_FALSE(client_.tls());
}

TEST_F(TlsSocketTest, CertificateFromAnotherCaIsRefusedClearly) {
  auto server_ctx = Context(pki_->server, TlsContext::Role::kServer);
  auto client_ctx = Context(pki_->stranger, TlsContext::Role::kClient);
  ASSERT_TRUE(server_ctx && client_ctx);
  auto server = std::async(std::launch::async,
                           [&]() -> Status { return server_.StartTls(*server_ctx, kTimeout); });
  Status s = client_.StartTls(*client_ctx, kTimeout);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.ToString();
  EXPECT_NE(s.message().find("TLS handshake with server-end failed"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("certificate"), std::string::npos) << s.message();
  client_.Close();
  EXPECT_FALSE(server.get().ok());
}

TEST_F(TlsSocketTest, ServerRequiresAClientCertificateFromItsCa) {
  auto server_ctx = Context(pki_->server, TlsContext::Role::kServer);
  TlsOptions o = pki_->stranger;
  o.ca = pki_->server.ca;  // the client trusts the server, the server does not trust it
  auto client_ctx = Context(o, TlsContext::Role::kClient);
  ASSERT_TRUE(server_ctx && client_ctx);
  auto server = std::async(std::launch::async,
                           [&]() -> Status { return server_.StartTls(*server_ctx, kTimeout); });
  // The client may finish its side of a TLS 1.3 handshake before the server's alert.
  (void)client_.StartTls(*client_ctx, kTimeout);
  client_.Close();
  Status server_status = server.get();
  EXPECT_EQ(server_status.code(), StatusCode::kPermissionDenied) << server_status.ToString();
  EXPECT_NE(server_status.message().find("client-end"), std::string::npos);
}

TEST(TlsContextTest, MissingFilesAreNamed) {
  TlsOptions o;
  o.enabled = true;
  o.cert = "/nonexistent/cert.pem";
  o.key = "/nonexistent/key.pem";
  auto c = TlsContext::Create(o, TlsContext::Role::kServer);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.error().message().find("backup.tls_cert \"/nonexistent/cert.pem\""),
            std::string::npos)
      << c.error().message();
}

}  // namespace
}  // namespace replboot::clone::net

namespace replboot::clone::net {
namespace {

// A peer that takes a few KiB now and then makes progress all the time, so a timeout of
// idleness would never fire: the write's one deadline does.
TEST(SocketWriteTest, APeerReadingATrickleCannotHoldAWritePastItsDeadline) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  Socket writer(fds[0], "trickle-reader");
  Socket reader(fds[1], "writer");
  std::atomic<bool> done{false};
  std::thread trickle([&] {
    std::vector<uint8_t> buffer(4096);
    while (!done) {
      (void)reader.ReadSome(buffer.data(), buffer.size(), std::chrono::milliseconds(50));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  const auto start = std::chrono::steady_clock::now();
  Status s = writer.WriteAll(std::string(64u << 20, 'x'), std::chrono::milliseconds(1'000));
  const auto took = std::chrono::steady_clock::now() - start;
  done = true;
  trickle.join();
  EXPECT_EQ(s.code(), StatusCode::kTimeout) << s.ToString();
  EXPECT_NE(s.message().find("67108864 bytes not all taken within 1000 ms"), std::string::npos)
      << s.ToString();
  EXPECT_LT(took, std::chrono::seconds(10));  // bounded, not paced by the reader
}

}  // namespace
}  // namespace replboot::clone::net
