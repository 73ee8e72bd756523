// The authenticated probe (HELLO mode probe) against a real BackupServer over loopback, and
// AuthenticatedProber on an io_context. No mysqld: the server's version query is replaced by
// its probe_server_version seam, and the backup tools are scripts that leave a mark.
#include "replboot/clone/prober.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <filesystem>
#include <functional>
#include <fstream>
#include <optional>
#include <thread>

#include "net.h"
#include "replboot/clone/backup_server.h"
#include "replboot/clone/clone.h"
#include "replboot/testing/temp_dir.h"
#include "tls_test_util.h"

namespace replboot::clone {
namespace {

Endpoint Loopback(uint16_t port) { return {boost::asio::ip::make_address("127.0.0.1"), port}; }

namespace asio = boost::asio;
using std::chrono::milliseconds;

class ProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The donor's backup tool: any run at all leaves a mark.
    server_tool_ = WriteScript("server-tool", "#!/bin/sh\necho \"$@\" >> '" + Mark() + "'\n");
    // The local tool the pre-flight asks for its version.
    local_tool_ = WriteScript(
        "local-tool",
        "#!/bin/sh\necho 'mariabackup based on MariaDB server 10.11.6-MariaDB Linux (x86_64)'\n");
  }
  void TearDown() override {
    if (server_) server_->Stop();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }
  std::string Mark() const { return tmp_.Path("tool-ran"); }
  std::string WriteScript(const std::string& name, const std::string& text) {
    std::string path = tmp_.Path(name);
    std::ofstream(path) << text;
    ::chmod(path.c_str(), 0755);
    return path;
  }
  void StartServer(std::string version = "10.11.6-MariaDB", int64_t max_concurrent = 1,
                   TlsOptions tls = {}) {
    ServerOptions o;
    o.tls = std::move(tls);
    o.listen = {boost::asio::ip::make_address("127.0.0.1"), 0};
    o.secret = "right-secret";
    o.tool = server_tool_;
    o.socket = "/nonexistent/replboot-test.sock";
    o.user = "nobody";
    o.max_concurrent = max_concurrent;
    o.work_dir = tmp_.path();
    o.probe_server_version = [version]() -> Result<std::string> { return version; };
    o.node_name = "mysql-0";  // what the AuthenticatedProber's candidate 0 expects
    o.node_ordinal = 0;
    if (tweak_) tweak_(o);
    server_ = std::make_unique<BackupServer>(io_, o);
    ASSERT_TRUE(server_->Start().ok());
    thread_ = std::thread([this] { io_.run(); });
  }
  CloneOptions Client(const std::string& secret) {
    CloneOptions c;
    c.datadir = tmp_.Path("data");
    c.secret = secret;
    c.tool = local_tool_;
    return c;
  }
  std::string Peer() { return "127.0.0.1:" + std::to_string(server_->port()); }
  Endpoint PeerEndpoint() { return Loopback(server_->port()); }
  // Probes the server started here as `client`: refused with `code`, the message naming `why`.
  void ExpectRefused(const CloneOptions& client, StatusCode code, const std::string& why) {
    auto info = ProbeDonor(PeerEndpoint(), client, milliseconds(5000));
    ASSERT_FALSE(info);
    EXPECT_EQ(info.error().code(), code);
    EXPECT_NE(info.error().message().find(why), std::string::npos) << info.error().message();
  }

  // Declared first, so removed last: after the server and its thread are gone.
  replboot::testing::TempDir tmp_{"prober-test"};
  asio::io_context io_;
  std::unique_ptr<BackupServer> server_;
  std::thread thread_;
  std::string server_tool_;
  std::string local_tool_;
  std::function<void(ServerOptions&)> tweak_;  // applied by StartServer last
};

TEST_F(ProbeTest, RightSecretAnswersWithoutStartingABackup) {
  StartServer();
  auto info = ProbeDonor(PeerEndpoint(), Client("right-secret"), milliseconds(5000));
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_EQ(info->flavour, "mariadb");
  EXPECT_EQ(info->server_version, "10.11.6-MariaDB");
  EXPECT_FALSE(info->busy);
  EXPECT_EQ(server_->probes_answered(), 1u);
  EXPECT_EQ(server_->backups_served(), 0u);
  EXPECT_EQ(server_->active_backups(), 0);
  EXPECT_FALSE(std::filesystem::exists(Mark())) << "the donor ran its backup tool for a probe";
  EXPECT_FALSE(std::filesystem::exists(tmp_.Path("data.replboot-staging")));
}

TEST_F(ProbeTest, WrongSecretIsPermissionDenied) {
  StartServer();
  ExpectRefused(Client("wrong-secret"), StatusCode::kPermissionDenied,
                "authentication failed at " + Peer());
  EXPECT_EQ(server_->probes_answered(), 0u);
}

TEST_F(ProbeTest, BusyDonorIsUnavailableWithTheReason) {
  StartServer("10.11.6-MariaDB", /*max_concurrent=*/0);
  ExpectRefused(Client("right-secret"), StatusCode::kUnavailable, "busy");
  EXPECT_FALSE(std::filesystem::exists(Mark()));
}

TEST_F(ProbeTest, VersionMismatchIsRefusedNamingBothVersions) {
  StartServer("10.6.18-MariaDB");
  ExpectRefused(Client("right-secret"), StatusCode::kInvalidArgument, "10.6 vs 10.11");
}

TEST_F(ProbeTest, FlavourMismatchIsRefused) {
  StartServer();
  CloneOptions c = Client("right-secret");
  c.flavour = Flavour::kMySQL;
  ExpectRefused(c, StatusCode::kInvalidArgument, "cannot cross flavours");
}

TEST_F(ProbeTest, ServerThatCannotQueryItsDatabaseIsUnavailable) {
  ServerOptions o;
  o.listen = {boost::asio::ip::make_address("127.0.0.1"), 0};
  o.secret = "right-secret";
  o.tool = server_tool_;
  o.socket = "/nonexistent/replboot-test.sock";  // the real version query fails
  o.user = "nobody";
  server_ = std::make_unique<BackupServer>(io_, o);
  ASSERT_TRUE(server_->Start().ok());
  thread_ = std::thread([this] { io_.run(); });
  ExpectRefused(Client("right-secret"), StatusCode::kUnavailable, "cannot query the local server");
}

TEST_F(ProbeTest, NothingListeningIsUnavailable) {
  uint16_t port;
  {
    asio::ip::tcp::acceptor a(io_, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  auto info = ProbeDonor(Loopback(port), Client("right-secret"),
                         milliseconds(5000));
  ASSERT_FALSE(info);
  EXPECT_EQ(info.error().code(), StatusCode::kUnavailable) << info.error().ToString();
}

// A listener that accepts (the kernel does) but never says a word.
TEST_F(ProbeTest, SilentServerTimesOutWithinTheBound) {
  asio::ip::tcp::acceptor silent(io_, {asio::ip::make_address("127.0.0.1"), 0});
  auto start = std::chrono::steady_clock::now();
  auto info = ProbeDonor(Loopback(silent.local_endpoint().port()),
                         Client("right-secret"), milliseconds(300));
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(info);
  EXPECT_EQ(info.error().code(), StatusCode::kTimeout) << info.error().ToString();
  EXPECT_GE(elapsed, milliseconds(250));
  EXPECT_LT(elapsed, milliseconds(5000));  // the whole probe is bounded, not each step
}

// The prober runs the blocking handshake on its own pool: the caller's io_context keeps
// running its other work while a probe waits on a silent peer.
TEST_F(ProbeTest, AuthenticatedProberDoesNotBlockTheCallersLoop) {
  asio::io_context io;
  asio::ip::tcp::acceptor silent(io, {asio::ip::make_address("127.0.0.1"), 0});
  AuthenticatedProber prober(Client("right-secret"), milliseconds(1500));
  std::optional<Status> result;
  bool timer_fired_first = false;
  asio::steady_timer timer(io, milliseconds(50));
  timer.async_wait([&](boost::system::error_code) { timer_fired_first = !result.has_value(); });
  asio::co_spawn(io, prober.Probe({0, "mysql-0.mysql"}, silent.local_endpoint()),
                 [&](std::exception_ptr e, Status s) {
                   EXPECT_FALSE(e);
                   result = std::move(s);
                 });
  io.run();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->code(), StatusCode::kTimeout) << result->ToString();
  EXPECT_TRUE(timer_fired_first);
}

TEST_F(ProbeTest, AuthenticatedProberAcceptsTheRightDonor) {
  StartServer();
  asio::io_context io;
  AuthenticatedProber prober(Client("right-secret"), milliseconds(5000));
  std::optional<Status> result;
  asio::co_spawn(
      io,
      prober.Probe({0, "mysql-0.mysql"}, {asio::ip::make_address("127.0.0.1"), server_->port()}),
      [&](std::exception_ptr e, Status s) {
        EXPECT_FALSE(e);
        result = std::move(s);
      });
  io.run();
  ASSERT_TRUE(result);
  EXPECT_TRUE(result->ok()) << result->ToString();
  EXPECT_EQ(server_->backups_served(), 0u);
  EXPECT_FALSE(std::filesystem::exists(Mark()));
}

// --- TLS (backup.tls) ---

class TlsProbeTest : public ProbeTest {
 protected:
  void SetUp() override {
    ProbeTest::SetUp();
    auto pki = MakeTestPki();
    ASSERT_TRUE(pki) << pki.error().ToString();
    pki_ = std::move(*pki);
  }
  CloneOptions TlsClient(const TlsOptions& tls) {
    CloneOptions c = Client("right-secret");
    c.tls = tls;
    return c;
  }
  std::unique_ptr<TestPki> pki_;
};

TEST_F(TlsProbeTest, ProbeOverTlsWithMutualVerification) {
  StartServer("10.11.6-MariaDB", 1, pki_->server);
  auto info = ProbeDonor(PeerEndpoint(), TlsClient(pki_->client), milliseconds(10000));
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_EQ(server_->probes_answered(), 1u);
  EXPECT_FALSE(std::filesystem::exists(Mark()));
}

TEST_F(TlsProbeTest, CertificateFromAnotherCaIsPermissionDenied) {
  StartServer("10.11.6-MariaDB", 1, pki_->server);
  auto info = ProbeDonor(PeerEndpoint(), TlsClient(pki_->stranger), milliseconds(10000));
  ASSERT_FALSE(info);
  EXPECT_EQ(info.error().code(), StatusCode::kPermissionDenied) << info.error().ToString();
  EXPECT_NE(info.error().message().find("TLS handshake with " + Peer() + " failed"),
            std::string::npos)
      << info.error().message();
  EXPECT_EQ(server_->probes_answered(), 0u);
}

TEST_F(TlsProbeTest, TlsClientAgainstAPlaintextServerSaysSo) {
  StartServer();
  auto info = ProbeDonor(PeerEndpoint(), TlsClient(pki_->client), milliseconds(10000));
  ASSERT_FALSE(info);
  EXPECT_NE(info.error().message().find("TLS handshake with " + Peer() + " failed"),
            std::string::npos)
      << info.error().message();
  EXPECT_NE(info.error().message().find("backup.tls = true on " + Peer()), std::string::npos)
      << info.error().message();
}

TEST_F(TlsProbeTest, PlaintextClientAgainstATlsServerSaysSo) {
  StartServer("10.11.6-MariaDB", 1, pki_->server);
  auto info = ProbeDonor(PeerEndpoint(), Client("right-secret"), milliseconds(10000));
  ASSERT_FALSE(info);
  EXPECT_EQ(info.error().code(), StatusCode::kUnavailable);
  EXPECT_NE(info.error().message().find(Peer() + " expects TLS"), std::string::npos)
      << info.error().message();
}

// A man in the middle with his own certificate terminates TLS towards both sides (no CA:
// nobody verifies) and relays the handshake frames unchanged. Without channel binding the
// relayed MACs would verify and he would read the stream; with it the server refuses.
TEST_F(TlsProbeTest, ChannelBindingDefeatsATlsTerminatingRelay) {
  TlsOptions unverified_server = pki_->server;
  unverified_server.ca.clear();
  TlsOptions unverified_client = pki_->client;
  unverified_client.ca.clear();
  TlsOptions mitm = pki_->stranger;
  mitm.ca.clear();
  StartServer("10.11.6-MariaDB", 1, unverified_server);

  asio::io_context relay_io;
  asio::ip::tcp::acceptor listener(relay_io, {asio::ip::make_address("127.0.0.1"), 0});
  const uint16_t relay_port = listener.local_endpoint().port();
  const uint16_t server_port = server_->port();
  auto relay_ctx = net::TlsContext::Create(mitm, net::TlsContext::Role::kServer);
  auto upstream_ctx = net::TlsContext::Create(mitm, net::TlsContext::Role::kClient);
  ASSERT_TRUE(relay_ctx && upstream_ctx);
  std::atomic<int> relayed{0};
  std::thread relay([&] {
    const milliseconds t(10000);
    asio::ip::tcp::socket accepted(relay_io);
    boost::system::error_code ec;
    listener.accept(accepted, ec);
    if (ec) return;
    int fd = accepted.release(ec);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    net::Socket down(fd, "victim-client");
    if (!down.StartTls(**relay_ctx, t).ok()) return;
    auto up = net::Connect(Loopback(server_port), t);
    if (!up || !up->StartTls(**upstream_ctx, t).ok()) return;
    // HELLO →, CHALLENGE ←, RESPONSE →, PROOF or ERROR ←: forwarded byte for byte.
    for (int i = 0; i < 2; ++i) {
      auto from_client = down.ReadControlFrame(t);
      if (!from_client || !up->WriteFrame(from_client->type, from_client->payload, t).ok()) return;
      auto from_server = up->ReadControlFrame(t);
      if (!from_server || !down.WriteFrame(from_server->type, from_server->payload, t).ok())
        return;
      relayed.fetch_add(1);
    }
  });
  auto info = ProbeDonor(Loopback(relay_port), TlsClient(unverified_client),
                         milliseconds(10000));
  relay.join();
  ASSERT_FALSE(info);
  EXPECT_EQ(info.error().code(), StatusCode::kPermissionDenied) << info.error().ToString();
  EXPECT_EQ(relayed.load(), 2) << "the relay did not get as far as the authentication";
  EXPECT_EQ(server_->probes_answered(), 0u);
}

// The cluster position a primary that lost its datadir asks for: the id file in the donor's
// datadir, its role and its GTID state, answered whether or not it could serve a clone now.
TEST_F(ProbeTest, AnswersTheNodesPlaceInTheCluster) {
  const std::string donor_datadir = tmp_.Path("donor-data");
  std::filesystem::create_directories(donor_datadir);
  std::ofstream(donor_datadir + "/replboot-cluster.id")
      << "0f8e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b\n";
  tweak_ = [&](ServerOptions& o) {
    o.datadir = donor_datadir;
    o.role = "replica";
    o.probe_gtid_state = []() -> Result<std::pair<std::string, std::string>> {
      return std::make_pair(std::string("0-100-57,0-101-2"), std::string("0-100-57"));
    };
  };
  StartServer("10.11.6-MariaDB", /*max_concurrent=*/0);  // busy: still answers its place
  auto info = ProbePeer(PeerEndpoint(), Client("right-secret"), milliseconds(5000));
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_EQ(info->cluster_id, "0f8e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b");
  EXPECT_TRUE(info->has_data);
  EXPECT_EQ(info->role, "replica");
  EXPECT_EQ(info->gtid_binlog_state, "0-100-57,0-101-2");
  EXPECT_EQ(info->gtid_current_pos, "0-100-57");
  EXPECT_TRUE(info->busy);
  EXPECT_EQ(DonorRefusal(Peer(), *info, Client("right-secret")).code(), StatusCode::kUnavailable);

  // Through discovery's Prober: the probe fails (busy) and the answer is kept all the same.
  AuthenticatedProber prober(Client("right-secret"), milliseconds(5000));
  asio::io_context io;
  std::optional<Status> result;
  asio::co_spawn(io, prober.Probe({0, "mysql-0.mysql"}, PeerEndpoint()),
                 [&](std::exception_ptr e, Status s) {
                   EXPECT_FALSE(e);
                   result = std::move(s);
                 });
  io.run();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->code(), StatusCode::kUnavailable) << result->ToString();
  auto answer = prober.Answer(PeerEndpoint());
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->cluster_id, "0f8e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b");
  EXPECT_EQ(answer->gtid_binlog_state, "0-100-57,0-101-2");
  prober.Forget();
  EXPECT_FALSE(prober.Answer(PeerEndpoint()));
  EXPECT_FALSE(std::filesystem::exists(Mark()));
}

// The probe says who answered: the identity the handshake proved.
TEST_F(ProbeTest, TheAnswerNamesTheNodeTheHandshakeProved) {
  StartServer();
  auto info = ProbePeer(PeerEndpoint(), Client("right-secret"), milliseconds(5000));
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_EQ(info->node, (NodeIdentity{"mysql-0", 0}));
}

// A relay on the path sends the probe meant for mysql-1 to mysql-2, which has the same
// secret and answers truthfully, for itself. The prober asked for candidate 1: refused by
// name, no answer kept for the endpoint, and the donor starts nothing.
TEST_F(ProbeTest, AnotherNodeAnsweringForTheCandidateIsRefusedByName) {
  tweak_ = [](ServerOptions& o) {
    o.node_name = "mysql-2";
    o.node_ordinal = 2;
  };
  StartServer();
  AuthenticatedProber prober(Client("right-secret"), milliseconds(5000));
  asio::io_context io;
  std::optional<Status> result;
  asio::co_spawn(io, prober.Probe({1, "mysql-1.mysql"}, PeerEndpoint()),
                 [&](std::exception_ptr e, Status s) {
                   EXPECT_FALSE(e);
                   result = std::move(s);
                 });
  io.run();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->code(), StatusCode::kPermissionDenied) << result->ToString();
  EXPECT_EQ(result->message(), Peer() + " answered as mysql-2 (ordinal 2), not as ordinal 1");
  EXPECT_FALSE(prober.Answer(PeerEndpoint()));
  EXPECT_EQ(server_->probes_answered(), 0u);

  // The same node, probed as the candidate it is, answers.
  result.reset();
  asio::co_spawn(io, prober.Probe({2, "mysql-2.mysql"}, PeerEndpoint()),
                 [&](std::exception_ptr e, Status s) {
                   EXPECT_FALSE(e);
                   result = std::move(s);
                 });
  io.restart();
  io.run();
  ASSERT_TRUE(result);
  EXPECT_TRUE(result->ok()) << result->ToString();
  ASSERT_TRUE(prober.Answer(PeerEndpoint()));
  EXPECT_EQ(prober.Answer(PeerEndpoint())->node, (NodeIdentity{"mysql-2", 2}));
  EXPECT_FALSE(std::filesystem::exists(Mark()));
}

// Fail closed: a server that states no ordinal (a test server, an unnamed `serve-backup`) is
// no candidate's.
TEST_F(ProbeTest, AServerWithoutAnOrdinalIsNoCandidate) {
  tweak_ = [](ServerOptions& o) {
    o.node_name.clear();
    o.node_ordinal.reset();
  };
  StartServer();
  CloneOptions c = Client("right-secret");
  c.expected_ordinal = 0;
  ExpectRefused(c, StatusCode::kPermissionDenied,
                Peer() + " answered as a node with no identity, not as ordinal 0");
  // Without an expectation (`replboot clone --from`) the secret alone decides.
  auto info = ProbeDonor(PeerEndpoint(), Client("right-secret"), milliseconds(5000));
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_EQ(info->node, NodeIdentity{});
}

TEST_F(ProbeTest, ANodeWithoutIdOrGtidStateSaysSo) {
  StartServer();
  auto info = ProbePeer(PeerEndpoint(), Client("right-secret"), milliseconds(5000));
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_EQ(info->cluster_id, "");
  EXPECT_FALSE(info->has_data);
  EXPECT_EQ(info->role, "");
}

// A node being cloned, or a primary asking its peers: an empty datadir answers "no data" at
// once (no query), is no donor, and a backup request gets a refusal, not a stream.
TEST_F(ProbeTest, AnEmptyDatadirSaysNoDataAndServesNoBackup) {
  const std::string donor_datadir = tmp_.Path("empty-data");
  std::filesystem::create_directories(donor_datadir);
  bool asked = false;
  tweak_ = [&](ServerOptions& o) {
    o.datadir = donor_datadir;
    o.probe_server_version = [&asked]() -> Result<std::string> {
      asked = true;
      return std::string("10.11.6-MariaDB");
    };
  };
  StartServer();
  auto info = ProbePeer(PeerEndpoint(), Client("right-secret"), milliseconds(5000));
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_FALSE(info->has_data);
  EXPECT_FALSE(info->ready);
  EXPECT_TRUE(info->error.empty()) << info->error;  // "no data" is an answer, not an error
  EXPECT_FALSE(asked);
  ExpectRefused(Client("right-secret"), StatusCode::kUnavailable, "holds no data yet");
  auto cloned = CloneFrom(PeerEndpoint(), Client("right-secret"));
  ASSERT_FALSE(cloned);
  EXPECT_NE(cloned.error().message().find("no data"), std::string::npos) << cloned.error().message();
  EXPECT_FALSE(std::filesystem::exists(Mark()));
}

// The backup user missing, mysqld down: the disk still says there is data, and the answer
// carries the error rather than "no data".
TEST_F(ProbeTest, DataOnDiskIsReportedWhenTheServerCannotBeAsked) {
  const std::string donor_datadir = tmp_.Path("donor-data");
  std::filesystem::create_directories(donor_datadir);
  std::ofstream(donor_datadir + "/ibdata1") << "x";
  tweak_ = [&](ServerOptions& o) {
    o.datadir = donor_datadir;
    o.probe_server_version = []() -> Result<std::string> {
      return Error(StatusCode::kPermissionDenied, "Access denied for user 'replboot_backup'");
    };
  };
  StartServer();
  auto info = ProbePeer(PeerEndpoint(), Client("right-secret"), milliseconds(5000));
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_TRUE(info->has_data);
  EXPECT_FALSE(info->ready);
  EXPECT_NE(info->error.find("Access denied"), std::string::npos) << info->error;
}

// The donor check: a node that is not ready, or diverged, is no donor, unless the caller (a
// primary that lost its volume) asks for its answer only.
TEST_F(ProbeTest, ADivergedOrUnreadyNodeIsNoDonor) {
  ServerOptions::Readiness readiness{.ready = false, .reason = "IO thread Connecting", .diverged = false};
  tweak_ = [&](ServerOptions& o) {
    o.readiness = [&readiness] { return readiness; };
  };
  StartServer();
  ExpectRefused(Client("right-secret"), StatusCode::kUnavailable, "IO thread Connecting");
  CloneOptions survey = Client("right-secret");
  survey.require_ready_donor = false;
  EXPECT_TRUE(ProbeDonor(PeerEndpoint(), survey, milliseconds(5000)));

  readiness = {.ready = true, .reason = "holds 0-102-1, which the primary lacks", .diverged = true};
  ExpectRefused(Client("right-secret"), StatusCode::kUnavailable, "diverged");
  auto info = ProbePeer(PeerEndpoint(), Client("right-secret"), milliseconds(5000));
  ASSERT_TRUE(info);
  EXPECT_TRUE(info->diverged);
  EXPECT_FALSE(info->ready);
  EXPECT_NE(info->not_ready_reason.find("0-102-1"), std::string::npos) << info->not_ready_reason;

  readiness = {.ready = true, .reason = "", .diverged = false};
  EXPECT_TRUE(ProbeDonor(PeerEndpoint(), Client("right-secret"), milliseconds(5000)));
}

// A re-clone replaces this cluster's data: a donor of another cluster is refused for good.
TEST_F(ProbeTest, ADonorOfAnotherClusterIsRefusedToAReclone) {
  const std::string donor_datadir = tmp_.Path("donor-data");
  std::filesystem::create_directories(donor_datadir);
  std::ofstream(donor_datadir + "/replboot-cluster.id") << "7a1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d\n";
  tweak_ = [&](ServerOptions& o) { o.datadir = donor_datadir; };
  StartServer();
  CloneOptions reclone = Client("right-secret");
  reclone.expected_cluster_id = "0f8e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b";
  ExpectRefused(reclone, StatusCode::kInvalidArgument, "not this node's");
  reclone.expected_cluster_id = "7a1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d";
  EXPECT_TRUE(ProbeDonor(PeerEndpoint(), reclone, milliseconds(5000)));
}

}  // namespace
}  // namespace replboot::clone
