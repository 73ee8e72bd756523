// db::Connect against a fake MySQL server on loopback that asks for an authentication plugin
// of its choosing: the plugins that would send the password as it is are refused before a byte
// of it leaves, and the fake is real enough that mysql_native_password logs in through it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "replboot/db/client.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::db {
namespace {

constexpr char kUser[] = "replboot_repl";
constexpr char kPassword[] = "Pw-in-clear-9f3a61c2";
// Every socket operation of the fake gives up after this, so a client that stalls (or a bug
// in the fake) fails the test instead of hanging it.
constexpr int kFakeTimeoutMs = 5000;

// Capability flags of the protocol (include/mysql_com.h).
constexpr uint32_t kClientLongPassword = 1;
constexpr uint32_t kClientConnectWithDb = 8;
constexpr uint32_t kClientProtocol41 = 0x200;
constexpr uint32_t kClientSsl = 0x800;
constexpr uint32_t kClientTransactions = 0x2000;
constexpr uint32_t kClientSecureConnection = 0x8000;
constexpr uint32_t kClientMultiResults = 0x20000;
constexpr uint32_t kClientPluginAuth = 0x80000;
constexpr uint32_t kServerCapabilities = kClientLongPassword | kClientConnectWithDb |
                                         kClientProtocol41 | kClientTransactions |
                                         kClientSecureConnection | kClientMultiResults |
                                         kClientPluginAuth;
constexpr uint16_t kServerStatusAutocommit = 0x0002;
constexpr uint8_t kComQuery = 0x03;

// What the fake server says, in order: a greeting naming `greeting_plugin`, then (when
// `switch_plugin` is set) an AuthSwitchRequest to it with `switch_data`, then OK packets for
// the login and every query until the client hangs up (when `accept_login`).
struct Script {
  // When set, the greeting offers TLS and the fake takes the client's SSLRequest and then
  // the TLS handshake with this context (which the Script does not own).
  SSL_CTX* tls = nullptr;
  std::string greeting_plugin = "mysql_native_password";
  std::string switch_plugin;
  std::string switch_data;
  bool accept_login = false;
};

// The 20-byte challenge of the greeting (printable, no NUL: it is sent NUL-terminated).
constexpr char kGreetingSeed[] = "abcdefghijklmnopqrst";
constexpr char kSwitchSeed[] = "ABCDEFGHIJKLMNOPQRST";

void PutU16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>(v >> 8));
}

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Protocol::HandshakeV10.
std::string Greeting(const std::string& plugin, bool tls) {
  const uint32_t caps = kServerCapabilities | (tls ? kClientSsl : 0);
  std::string p;
  p.push_back(10);                  // protocol version
  p += "8.0.99-fake";               // server version, NUL-terminated
  p.push_back('\0');
  PutU32(p, 42);                    // connection id
  p.append(kGreetingSeed, 8);       // auth-plugin-data part 1
  p.push_back('\0');                // filler
  PutU16(p, caps & 0xffff);
  p.push_back(45);                  // utf8mb4_general_ci
  PutU16(p, kServerStatusAutocommit);
  PutU16(p, static_cast<uint16_t>(caps >> 16));
  p.push_back(21);                  // length of the auth-plugin-data, both parts and the NUL
  p.append(10, '\0');               // reserved
  p.append(kGreetingSeed + 8, 12);  // auth-plugin-data part 2
  p.push_back('\0');
  p += plugin;
  p.push_back('\0');
  return p;
}

std::string OkPacket() {
  std::string p;
  p.push_back(0x00);
  p.push_back(0);  // affected rows
  p.push_back(0);  // last insert id
  PutU16(p, kServerStatusAutocommit);
  PutU16(p, 0);  // warnings
  return p;
}

// The fake server: one connection, one thread, the listening socket bound before the
// constructor returns (so the client cannot come too early).
class FakeServer {
 public:
  explicit FakeServer(Script script) : script_(std::move(script)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) {
      ADD_FAILURE() << "socket: " << std::strerror(errno);
      return;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listen_fd_, 1) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "bind/listen on loopback: " << std::strerror(errno);
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeServer() {
    Join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  int port() const { return port_; }
  // Waits for the conversation to end (the client hung up, or the fake's timeout).
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  // After Join(): each packet payload the client sent, and every byte it sent at all (a
  // password split across packets, or sent after an unparsed packet, is still in `bytes`).
  const std::vector<std::string>& packets() const { return packets_; }
  const std::string& bytes() const { return bytes_; }
  const std::string& problem() const { return problem_; }
  bool tls_failed() const { return tls_failed_; }

 private:
  void Serve() {
    pollfd pfd{listen_fd_, POLLIN, 0};
    if (::poll(&pfd, 1, kFakeTimeoutMs) != 1) {
      problem_ = "no client connected";
      return;
    }
    fd_ = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd_ < 0) {
      problem_ = std::string("accept: ") + std::strerror(errno);
      return;
    }
    timeval tv{kFakeTimeoutMs / 1000, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    Converse();
    // Whatever else arrives until the client hangs up is recorded too.
    char buf[4096];
    for (int n; (n = Receive(buf, sizeof(buf))) > 0;) bytes_.append(buf, n);
    if (ssl_ != nullptr) SSL_free(ssl_);
    ::close(fd_);
  }

  void Converse() {
    uint8_t seq = 0;
    if (!Send(Greeting(script_.greeting_plugin, script_.tls != nullptr), seq++)) return;
    if (script_.tls != nullptr) {
      if (!Read(&seq)) return;  // SSLRequest: the client's capabilities, in the clear
      ssl_ = SSL_new(script_.tls);
      SSL_set_fd(ssl_, fd_);
      if (SSL_accept(ssl_) != 1) {
        tls_failed_ = true;
        SSL_free(ssl_);
        ssl_ = nullptr;
        return;
      }
    }
    auto response = Read(&seq);  // HandshakeResponse41
    if (!response) return;
    if (!script_.switch_plugin.empty()) {
      std::string request = "\xfe" + script_.switch_plugin;
      request.push_back('\0');
      request += script_.switch_data;
      if (!Send(request, seq++)) return;
      if (!Read(&seq)) return;  // the client's answer to the switch, if it gives one
    }
    if (!script_.accept_login) return;
    if (!Send(OkPacket(), seq++)) return;
    // Commands: each starts a new sequence. OK to every query; COM_QUIT or EOF ends it.
    for (;;) {
      seq = 0;
      auto command = Read(&seq);
      if (!command || command->empty() || (*command)[0] != static_cast<char>(kComQuery)) return;
      if (!Send(OkPacket(), seq++)) return;
    }
  }

  bool Send(const std::string& payload, uint8_t seq) {
    std::string frame;
    frame.push_back(static_cast<char>(payload.size() & 0xff));
    frame.push_back(static_cast<char>((payload.size() >> 8) & 0xff));
    frame.push_back(static_cast<char>((payload.size() >> 16) & 0xff));
    frame.push_back(static_cast<char>(seq));
    frame += payload;
    size_t sent = 0;
    while (sent < frame.size()) {
      ssize_t n = ssl_ != nullptr
                      ? SSL_write(ssl_, frame.data() + sent, static_cast<int>(frame.size() - sent))
                      : ::send(fd_, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  int Receive(char* buf, size_t n) {
    if (ssl_ != nullptr) return SSL_read(ssl_, buf, static_cast<int>(n));
    return static_cast<int>(::recv(fd_, buf, n, 0));
  }

  bool ReadExactly(size_t n, std::string* out) {
    while (out->size() < n) {
      char buf[4096];
      int got = Receive(buf, std::min(sizeof(buf), n - out->size()));
      if (got <= 0) return false;
      out->append(buf, static_cast<size_t>(got));
      bytes_.append(buf, static_cast<size_t>(got));
    }
    return true;
  }

  // One packet's payload; the sequence number continues from the client's.
  std::optional<std::string> Read(uint8_t* seq) {
    std::string header;
    if (!ReadExactly(4, &header)) return std::nullopt;
    size_t len = static_cast<uint8_t>(header[0]) | (static_cast<uint8_t>(header[1]) << 8) |
                 (static_cast<size_t>(static_cast<uint8_t>(header[2])) << 16);
    *seq = static_cast<uint8_t>(static_cast<uint8_t>(header[3]) + 1);
    std::string payload;
    if (!ReadExactly(len, &payload)) return std::nullopt;
    packets_.push_back(payload);
    return payload;
  }

  Script script_;
  int listen_fd_ = -1;
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  bool tls_failed_ = false;
  int port_ = 0;
  std::thread thread_;
  std::vector<std::string> packets_;
  std::string bytes_;
  std::string problem_;
};

ConnectOptions To(const FakeServer& server) {
  ConnectOptions options;
  options.host = "127.0.0.1";
  options.port = server.port();
  options.user = kUser;
  options.password = kPassword;
  // Well under the fake's own timeout: the client gives up first if the fake is silent.
  options.connect_timeout = std::chrono::seconds(2);
  options.read_timeout = std::chrono::seconds(2);
  return options;
}

bool HoldsPassword(const std::string& bytes) {
  return bytes.find(kPassword) != std::string::npos;
}

std::string Sha1(const std::string& data) {
  std::array<unsigned char, SHA_DIGEST_LENGTH> out{};
  SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data());
  return std::string(reinterpret_cast<const char*>(out.data()), out.size());
}

// What mysql_native_password answers to `seed`: SHA1(pw) XOR SHA1(seed + SHA1(SHA1(pw))).
std::string NativeScramble(const std::string& seed, const std::string& password) {
  std::string stage1 = Sha1(password);
  std::string mask = Sha1(seed + Sha1(stage1));
  std::string out(stage1.size(), '\0');
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>(stage1[i] ^ mask[i]);
  return out;
}

TEST(RestrictedAuthTest, SwitchToClearPasswordGetsNoPassword) {
  Script script;
  script.switch_plugin = "mysql_clear_password";
  FakeServer server(script);
  auto session = Connect(To(server));
  server.Join();
  ASSERT_TRUE(server.problem().empty()) << server.problem();
  ASSERT_FALSE(session.has_value()) << "the fake accepts no login, yet Connect succeeded";
  EXPECT_EQ(session.error().code(), StatusCode::kPermissionDenied) << session.error().ToString();
  // (Connector/C names the plugin garbled here; replboot's part of the message is plain.)
  EXPECT_NE(session.error().message().find("the server asked for an authentication plugin this "
                                           "connection refuses"),
            std::string::npos)
      << session.error().message();
  // The handshake response did reach the fake (so the recording works) ...
  ASSERT_GE(server.packets().size(), 1u);
  EXPECT_NE(server.packets()[0].find(kUser), std::string::npos);
  // ... and nothing after it: no answer to the switch, and no password anywhere.
  EXPECT_EQ(server.packets().size(), 1u);
  EXPECT_FALSE(HoldsPassword(server.bytes()));
}

TEST(RestrictedAuthTest, GreetingAskingForClearPasswordGetsNoPassword) {
  Script script;
  script.greeting_plugin = "mysql_clear_password";
  FakeServer server(script);
  auto session = Connect(To(server));
  server.Join();
  ASSERT_TRUE(server.problem().empty()) << server.problem();
  ASSERT_FALSE(session.has_value());
  EXPECT_EQ(session.error().code(), StatusCode::kPermissionDenied) << session.error().ToString();
  EXPECT_FALSE(HoldsPassword(server.bytes()));
}

TEST(RestrictedAuthTest, SwitchToDialogGetsNoPassword) {
  // PAM's dialog plugin prints the server's prompt and sends the answer as it is.
  Script script;
  script.switch_plugin = "dialog";
  script.switch_data = std::string("\x04Password: ", 11);
  FakeServer server(script);
  auto session = Connect(To(server));
  server.Join();
  ASSERT_FALSE(session.has_value());
  EXPECT_EQ(session.error().code(), StatusCode::kPermissionDenied) << session.error().ToString();
  EXPECT_EQ(server.packets().size(), 1u);
  EXPECT_FALSE(HoldsPassword(server.bytes()));
}

TEST(RestrictedAuthTest, CachingSha2OverUnverifiedTcpIsRefused) {
  // Its full path would hand the password to an RSA key of the server's choosing.
  Script script;
  script.switch_plugin = "caching_sha2_password";
  script.switch_data = std::string(kSwitchSeed) + '\0';
  FakeServer server(script);
  auto session = Connect(To(server));
  server.Join();
  ASSERT_FALSE(session.has_value());
  EXPECT_EQ(session.error().code(), StatusCode::kPermissionDenied) << session.error().ToString();
  EXPECT_NE(session.error().message().find("need TLS with a verified server certificate"),
            std::string::npos)
      << session.error().message();
  EXPECT_EQ(server.packets().size(), 1u);
}

TEST(RestrictedAuthTest, SwitchToNativePasswordGetsTheScrambleAndLogsIn) {
  // The fake is real enough for a login: the first tests fail if the client would talk.
  Script script;
  script.switch_plugin = "mysql_native_password";
  script.switch_data = std::string(kSwitchSeed) + '\0';
  script.accept_login = true;
  FakeServer server(script);
  {
    auto session = Connect(To(server));
    ASSERT_TRUE(session.has_value()) << session.error().ToString();
  }  // closed: the fake's conversation ends
  server.Join();
  ASSERT_TRUE(server.problem().empty()) << server.problem();
  ASSERT_GE(server.packets().size(), 3u);  // response, switch answer, the sql_mode SET
  // The handshake response already carries the scramble for the greeting's seed.
  EXPECT_NE(server.packets()[0].find(NativeScramble(kGreetingSeed, kPassword)),
            std::string::npos);
  EXPECT_EQ(server.packets()[1], NativeScramble(kSwitchSeed, kPassword));
  EXPECT_EQ(server.packets()[2], std::string(1, static_cast<char>(kComQuery)) +
                                     kBackslashEscapesSql);
  EXPECT_FALSE(HoldsPassword(server.bytes()));
}

// --- TLS: a throwaway CA and a server certificate, made here with OpenSSL ---

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* c) const { X509_free(c); }
};
struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

// A P-256 certificate for `cn`, valid for an hour; issued by `issuer` (null: self-signed CA).
Cert MakeCert(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key,
              const std::string& san) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  auto add = [&](int nid, const std::string& value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    ASSERT_NE(ext, nullptr) << value;
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  };
  add(NID_basic_constraints, issuer == nullptr ? "critical,CA:TRUE" : "CA:FALSE");
  if (!san.empty()) add(NID_subject_alt_name, san);
  EXPECT_GT(X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()), 0);
  return cert;
}

// A CA (its PEM in `dir`/ca.pem) and a server context whose certificate it signed for `san`.
struct Pki {
  Pki(const testing::TempDir& dir, const std::string& san)
      : ca_key(EVP_EC_gen("P-256")), server_key(EVP_EC_gen("P-256")) {
    ca = MakeCert("test-ca", ca_key.get(), nullptr, nullptr, "");
    server = MakeCert("server", server_key.get(), ca.get(), ca_key.get(), san);
    ca_path = dir.Path("ca.pem");
    FILE* f = std::fopen(ca_path.c_str(), "w");
    PEM_write_X509(f, ca.get());
    std::fclose(f);
    ctx.reset(SSL_CTX_new(TLS_server_method()));
    SSL_CTX_use_certificate(ctx.get(), server.get());
    SSL_CTX_use_PrivateKey(ctx.get(), server_key.get());
  }
  Key ca_key, server_key;
  Cert ca, server;
  std::string ca_path;
  std::unique_ptr<SSL_CTX, CtxFree> ctx;
};

ConnectOptions ToOverTls(const FakeServer& server, const std::string& ca) {
  ConnectOptions options = To(server);
  options.host = "localhost";  // the name the certificate must hold
  options.tls.enabled = true;
  options.tls.ca = ca;
  return options;
}

TEST(PeerTlsTest, VerifiedCertificateLogsInOverTls) {
  testing::TempDir dir("db-tls");
  Pki pki(dir, "DNS:localhost");
  Script script;
  script.tls = pki.ctx.get();
  script.accept_login = true;
  FakeServer server(script);
  {
    auto session = Connect(ToOverTls(server, pki.ca_path));
    ASSERT_TRUE(session.has_value()) << session.error().ToString();
  }
  server.Join();
  ASSERT_TRUE(server.problem().empty()) << server.problem();
  EXPECT_FALSE(server.tls_failed());
  // SSLRequest in the clear, then the handshake response inside TLS.
  ASSERT_GE(server.packets().size(), 2u);
  EXPECT_EQ(server.packets()[0].size(), 32u);
  EXPECT_NE(server.packets()[1].find(kUser), std::string::npos);
}

TEST(PeerTlsTest, CertificateForAnotherNameIsRefusedBeforeTheLogin) {
  testing::TempDir dir("db-tls");
  Pki pki(dir, "DNS:mysql-0.mysql");  // right CA, wrong host
  Script script;
  script.tls = pki.ctx.get();
  script.accept_login = true;
  FakeServer server(script);
  auto session = Connect(ToOverTls(server, pki.ca_path));
  server.Join();
  ASSERT_FALSE(session.has_value()) << "a certificate for mysql-0.mysql was accepted for localhost";
  EXPECT_EQ(session.error().code(), StatusCode::kUnavailable) << session.error().ToString();
  // Nothing but the SSLRequest: no user name, no scramble.
  EXPECT_LE(server.packets().size(), 1u);
  EXPECT_EQ(server.bytes().find(kUser), std::string::npos);
}

TEST(PeerTlsTest, CertificateFromAnotherCaIsRefused) {
  testing::TempDir dir("db-tls");
  testing::TempDir other_dir("db-tls-other");
  Pki pki(dir, "DNS:localhost");
  Pki stranger(other_dir, "DNS:localhost");
  Script script;
  script.tls = stranger.ctx.get();
  script.accept_login = true;
  FakeServer server(script);
  auto session = Connect(ToOverTls(server, pki.ca_path));
  server.Join();
  ASSERT_FALSE(session.has_value());
  EXPECT_EQ(session.error().code(), StatusCode::kUnavailable) << session.error().ToString();
  EXPECT_EQ(server.bytes().find(kUser), std::string::npos);
}

TEST(PeerTlsTest, ServerWithoutTlsIsRefusedWhenTlsIsOn) {
  // A host on the path clears the greeting's CLIENT_SSL bit: no fallback to plaintext.
  Script script;
  script.accept_login = true;
  FakeServer server(script);
  ConnectOptions options = To(server);
  options.tls.enabled = true;  // even without a CA
  auto session = Connect(options);
  server.Join();
  ASSERT_FALSE(session.has_value());
  EXPECT_EQ(session.error().code(), StatusCode::kUnavailable) << session.error().ToString();
  EXPECT_NE(session.error().message().find("TLS is required but the server offered none"),
            std::string::npos)
      << session.error().message();
  EXPECT_FALSE(HoldsPassword(server.bytes()));
}

TEST(PeerTlsTest, ServerWithoutTlsIsRefusedBeforeTheLoginWithACa) {
  testing::TempDir dir("db-tls");
  Pki pki(dir, "DNS:localhost");
  Script script;  // no TLS offered
  script.accept_login = true;
  FakeServer server(script);
  auto session = Connect(ToOverTls(server, pki.ca_path));
  server.Join();
  ASSERT_FALSE(session.has_value());
  EXPECT_EQ(session.error().code(), StatusCode::kUnavailable) << session.error().ToString();
  EXPECT_TRUE(server.packets().empty());
  EXPECT_EQ(server.bytes().find(kUser), std::string::npos);
}

TEST(AllowedAuthPluginsTest, PasswordSendingPluginsOnlyOverSocketOrVerifiedTls) {
  ConnectOptions socket;
  socket.socket = "/run/mysqld/mysqld.sock";
  ConnectOptions plain;
  plain.host = "mysql-0.mysql";
  ConnectOptions unverified = plain;
  unverified.tls.enabled = true;
  ConnectOptions verified = unverified;
  verified.tls.ca = "/etc/replboot/tls/ca.pem";
  const std::string all =
      "mysql_native_password,client_ed25519,caching_sha2_password,sha256_password";
  EXPECT_EQ(AllowedAuthPlugins(socket), all);
  EXPECT_EQ(AllowedAuthPlugins(verified), all);
  EXPECT_EQ(AllowedAuthPlugins(plain), "mysql_native_password,client_ed25519");
  EXPECT_EQ(AllowedAuthPlugins(unverified), "mysql_native_password,client_ed25519");
  // A socket wins over TLS settings (they only apply to TCP).
  ConnectOptions socket_and_ca = verified;
  socket_and_ca.socket = socket.socket;
  EXPECT_EQ(AllowedAuthPlugins(socket_and_ca), all);
}

}  // namespace
}  // namespace replboot::db
