// One stop token, from the supervisor down: a stop request ends each phase of a clone at once
// (discovery's DNS lookups, connect, the stream, --prepare, the backoff between rounds),
// instead of the phase running out its own timeout.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <fstream>
#include <thread>

#include "replboot/base/process.h"
#include "replboot/clone/clone.h"
#include "replboot/daemon/clone_step.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::daemon {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Requests a stop on `source` after `delay`, from another thread (as the supervisor's signal
// loop does).
std::jthread StopAfter(std::stop_source& source, milliseconds delay) {
  return std::jthread([&source, delay] {
    std::this_thread::sleep_for(delay);
    source.request_stop();
  });
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A TCP listener that accepts (the kernel does) and never says a word.
struct SilentListener {
  SilentListener() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd, 16);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  ~SilentListener() { ::close(fd); }
  clone::Endpoint endpoint() const { return {boost::asio::ip::make_address("127.0.0.1"), port}; }
  int fd = -1;
  uint16_t port = 0;
};

// A UDP socket that receives DNS queries and never answers.
struct SilentDns {
  SilentDns() {
    fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  ~SilentDns() { ::close(fd); }
  int fd = -1;
  uint16_t port = 0;
};

TEST(StopTokenTest, PrepareLikeChildIsEndedWithItsGroup) {
  std::stop_source source;
  auto stopper = StopAfter(source, milliseconds(200));
  auto start = Clock::now();
  // A child that starts a grandchild in its group and ignores nothing: both must go.
  auto run = process::RunCapture({"/bin/sh", "-c", "sleep 60 & sleep 60"},
                                 process::ChildEnvironment(), std::nullopt, source.get_token());
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code(), StatusCode::kCancelled) << run.error().ToString();
  EXPECT_LT(SecondsSince(start), 10.0);
}

TEST(StopTokenTest, StreamFromASilentDonorEndsOnStop) {
  SilentListener donor;
  clone::CloneOptions options;
  testing::TempDir dir("stop-token");
  options.datadir = dir.Path("data");
  options.secret = "a-secret-of-sixteen-or-more-bytes";
  options.connect_timeout = milliseconds(60'000);
  options.handshake_timeout = milliseconds(60'000);  // the handshake would wait this long
  std::stop_source source;
  options.stop = source.get_token();
  auto stopper = StopAfter(source, milliseconds(300));
  auto start = Clock::now();
  auto result = clone::CloneFrom(donor.endpoint(), options);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code(), StatusCode::kCancelled) << result.error().ToString();
  EXPECT_LT(SecondsSince(start), 10.0);
}

TEST(StopTokenTest, BackoffBetweenRoundsEndsOnStop) {
  clone::CloneOptions options;
  std::stop_source source;
  options.stop = source.get_token();
  clone::RetryPolicy policy;
  policy.first_backoff = milliseconds(60'000);
  auto stopper = StopAfter(source, milliseconds(200));
  auto start = Clock::now();
  auto result =
      clone::CloneFromPeers([] { return std::vector<clone::DonorEndpoint>{}; }, options, policy);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code(), StatusCode::kCancelled) << result.error().ToString();
  EXPECT_LT(SecondsSince(start), 10.0);
}

TEST(StopTokenTest, DiscoveryAgainstASilentDnsServerEndsOnStop) {
  SilentDns dns;
  testing::TempDir dir("stop-token");
  const std::string resolv = dir.Path("resolv.conf");
  { std::ofstream(resolv) << "nameserver 127.0.0.1\n"; }
  conf::Config config;
  config.node.hostname = "mysql-2";
  config.node.flavour = "mariadb";
  config.backup.secret = "a-secret-of-sixteen-or-more-bytes";
  config.dns.servers = {"127.0.0.1:" + std::to_string(dns.port)};
  config.dns.resolv_conf = resolv;
  config.dns.timeout_ms = 20'000;
  config.dns.lookup_deadline = 600;
  auto settings = ResolveSettings(config, {.identity = true, .flavour = true, .mysql_user = false});
  ASSERT_TRUE(settings) << settings.error().ToString();
  auto step = CloneStep::Create(*settings);
  ASSERT_TRUE(step) << step.error().ToString();
  std::stop_source source;
  auto stopper = StopAfter(source, milliseconds(300));
  auto start = Clock::now();
  auto donors = (*step)->DiscoverDonors(source.get_token());
  EXPECT_TRUE(donors.empty());
  EXPECT_LT(SecondsSince(start), 10.0);
}

}  // namespace
}  // namespace replboot::daemon
