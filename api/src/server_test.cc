#include "replboot/api/server.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "replboot/api/http_get.h"

namespace replboot::api {
namespace {

ServerOptions Options() {
  ServerOptions o;
  o.info.role = replication::NodeRole::kReplica;
  o.info.ordinal = 2;
  o.info.server_id = 102;
  o.local.socket = "/nonexistent/replboot-node-test.sock";
  o.local.user = "root";
  o.local.connect_timeout = std::chrono::seconds(1);
  o.listen = "127.0.0.1:0";
  o.poll_interval = std::chrono::milliseconds(50);
  return o;
}

HttpResponse Get(const Server& node, const std::string& path) {
  auto r =
      HttpGet(fmt::format("http://127.0.0.1:{}{}", node.port(), path), std::chrono::seconds(5));
  EXPECT_TRUE(r.has_value()) << r.error().ToString();
  return r.value_or(HttpResponse{});
}

TEST(ServerTest, ServesDecisionsAndStatusWithoutADatabase) {
  Server node(Options());
  ASSERT_TRUE(node.StartInBackground().ok());
  ASSERT_NE(node.port(), 0);
  node.SetLastError("replication threads not running within 60000 ms: IO thread Connecting");
  node.AddError("backup server disabled: no secret");
  CloneProgress::View clone;
  clone.phase = "done";
  clone.donor = "mysql-1.mysql";
  clone.bytes = clone.total_bytes = 4096;
  node.clone_progress().Set(clone);
  node.CountBackupServed();
  node.CountBackupConnectionRefused();
  // Wait for the first poll (it fails: no server at the socket).
  for (int i = 0; i < 100 && node.Current().mysqld_error == "not checked yet"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  HttpResponse health = Get(node, "/health");
  EXPECT_EQ(health.status, 503);
  EXPECT_NE(health.body.find("/nonexistent/replboot-node-test.sock"), std::string::npos)
      << health.body;
  EXPECT_EQ(Get(node, "/ready").status, 503);
  EXPECT_EQ(Get(node, "/primary").status, 503);
  EXPECT_EQ(Get(node, "/replica?lag=5").status, 503);
  EXPECT_EQ(Get(node, "/replica?lag=abc").status, 400);
  EXPECT_EQ(Get(node, "/nope").status, 404);
  EXPECT_EQ(Get(node, "/wait").status, 400);
  EXPECT_EQ(Get(node, "/wait?gtid=0-1-2&timeout=x").status, 400);
  // Numbers are refused before anything touches the database, naming the parameter.
  for (const char* timeout : {"inf", "nan", "-1", "1e300", "61", "%69nf"}) {
    HttpResponse r = Get(node, fmt::format("/wait?gtid=0-1-2&timeout={}", timeout));
    EXPECT_EQ(r.status, 400) << timeout;
    EXPECT_EQ(r.body.rfind("timeout '", 0), 0u) << r.body;
  }
  HttpResponse lag = Get(node, "/replica?lag=inf");
  EXPECT_EQ(lag.status, 400);
  EXPECT_EQ(lag.body, "lag 'inf' is not a finite number\n");
  EXPECT_EQ(Get(node, "/wait?gtid=0-1-2&timeout=1").status, 503);  // server unavailable
  HttpResponse status = Get(node, "/status");
  ASSERT_EQ(status.status, 200);
  auto j = nlohmann::json::parse(status.body);
  EXPECT_EQ(j["role"], "replica");
  EXPECT_EQ(j["server_id"], 102);
  EXPECT_EQ(j["mysqld_up"], false);
  EXPECT_EQ(j["clone"]["bytes"], 4096);
  EXPECT_EQ(j["backups_served"], 1);
  // Both errors stay: the backup server's does not hide the replica's.
  EXPECT_EQ(j["last_error"],
            "replication threads not running within 60000 ms: IO thread Connecting; backup server "
            "disabled: no secret");
  HttpResponse metrics = Get(node, "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("replboot_mysqld_up 0\n"), std::string::npos);
  EXPECT_NE(metrics.body.find("replboot_backups_served_total 1\n"), std::string::npos);
  EXPECT_NE(metrics.body.find("replboot_backup_connections_refused_total 1\n"), std::string::npos);
  node.Stop();
}

TEST(ServerTest, ListenErrorsNameTheAddress) {
  ServerOptions o = Options();
  o.listen = "not-an-ip:8008";
  Server bad(o);
  Status status = bad.StartInBackground();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("not-an-ip"), std::string::npos);

  Server first(Options());
  ASSERT_TRUE(first.StartInBackground().ok());
  o = Options();
  o.listen = fmt::format("127.0.0.1:{}", first.port());
  Server second(o);
  status = second.StartInBackground();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find(o.listen), std::string::npos) << status.message();
}

TEST(ServerTest, ConnectionsBeyondTheCapAreClosedAtOnceAndCounted) {
  ServerOptions o = Options();
  o.max_connections = 2;
  Server node(o);
  ASSERT_TRUE(node.StartInBackground().ok());
  namespace asio = boost::asio;
  asio::io_context io;
  auto endpoint = asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), node.port());
  std::vector<asio::ip::tcp::socket> held;
  for (int i = 0; i < 2; ++i) {
    held.emplace_back(io);
    held.back().connect(endpoint);
  }
  // Accepted in order: the first two hold the slots (idle, within the read timeout).
  asio::ip::tcp::socket extra(io);
  extra.connect(endpoint);
  char byte = 0;
  boost::system::error_code error;
  extra.read_some(asio::buffer(&byte, 1), error);  // the server closes it: EOF, not a hang
  EXPECT_EQ(error, asio::error::eof) << error.message();
  EXPECT_FALSE(
      HttpGet(fmt::format("http://127.0.0.1:{}/metrics", node.port()), std::chrono::seconds(2))
          .has_value());
  held.clear();  // slots free again
  std::string metrics;
  for (int i = 0; i < 100 && metrics.empty(); ++i) {
    auto r =
        HttpGet(fmt::format("http://127.0.0.1:{}/metrics", node.port()), std::chrono::seconds(2));
    if (r)
      metrics = r->body;
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // The extra connection and the GET, and any retry above made before the slots were free.
  // (std::regex trips GCC 12's -Wmaybe-uninitialized under the sanitizers.)
  const std::string refused_line = "\nreplboot_http_connections_refused_total ";
  size_t at = metrics.find(refused_line);
  ASSERT_NE(at, std::string::npos) << metrics;
  EXPECT_GE(std::stoi(metrics.substr(at + refused_line.size())), 2) << metrics;
  EXPECT_NE(metrics.find("replboot_http_connections 1\n"), std::string::npos) << metrics;
}

// Whether the server closed `socket` within `timeout` (EOF or reset), without sending.
bool ClosedWithin(boost::asio::ip::tcp::socket& socket, std::chrono::milliseconds timeout) {
  pollfd fd{socket.native_handle(), POLLIN, 0};
  if (::poll(&fd, 1, static_cast<int>(timeout.count())) != 1) return false;
  char byte = 0;
  boost::system::error_code error;
  size_t n = socket.read_some(boost::asio::buffer(&byte, 1), error);
  return n == 0 && error;
}

// One client (127.0.0.99; any 127.x address is loopback on Linux) opening connections and
// sending nothing: it gets max_connections_per_address of them, the rest are closed at
// once, and those it holds are closed at the request deadline. Meanwhile another address
// (the kubelet's) is answered at once.
TEST(ServerTest, OneAddressHoldingIdleConnectionsLeavesRoomForTheKubelet) {
  ServerOptions o = Options();
  o.max_connections = 8;
  o.max_connections_per_address = 3;
  o.request_timeout = std::chrono::milliseconds(1000);
  Server node(o);
  ASSERT_TRUE(node.StartInBackground().ok());
  namespace asio = boost::asio;
  asio::io_context io;
  const auto endpoint = asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), node.port());
  const auto start = std::chrono::steady_clock::now();
  std::vector<asio::ip::tcp::socket> flood;
  for (int i = 0; i < 6; ++i) {
    flood.emplace_back(io);
    flood.back().open(asio::ip::tcp::v4());
    flood.back().bind(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.99"), 0));
    flood.back().connect(endpoint);
  }
  // Accepted in order: the first three hold the address's slots, the others are closed.
  for (int i = 3; i < 6; ++i) {
    EXPECT_TRUE(ClosedWithin(flood[i], std::chrono::milliseconds(500))) << "connection " << i;
  }
  for (int i = 0; i < 3; ++i) {
    pollfd fd{flood[i].native_handle(), POLLIN, 0};
    EXPECT_EQ(::poll(&fd, 1, 0), 0) << "connection " << i << " should still be open";
  }
  const auto asked = std::chrono::steady_clock::now();
  auto health =
      HttpGet(fmt::format("http://127.0.0.1:{}/health", node.port()), std::chrono::seconds(2));
  ASSERT_TRUE(health.has_value()) << health.error().ToString();
  EXPECT_EQ(health->status, 503);  // no mysqld here, but answered
  EXPECT_LT(std::chrono::steady_clock::now() - asked, std::chrono::milliseconds(500));
  // The held ones go at their deadline (1 s from the accept), not later.
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(ClosedWithin(flood[i], std::chrono::milliseconds(2500))) << "connection " << i;
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, std::chrono::milliseconds(900));
  EXPECT_LT(elapsed, std::chrono::milliseconds(2500));
  auto metrics =
      HttpGet(fmt::format("http://127.0.0.1:{}/metrics", node.port()), std::chrono::seconds(2));
  ASSERT_TRUE(metrics.has_value());
  EXPECT_NE(metrics->body.find("\nreplboot_http_connections_refused_total 3\n"),
            std::string::npos)
      << metrics->body;
}

TEST(HttpGetTest, UnreachableIsUnavailableNamingTheUrl) {
  auto r = HttpGet("http://127.0.0.1:1/status", std::chrono::seconds(2));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.error().message().find("http://127.0.0.1:1/status"), std::string::npos);
  EXPECT_FALSE(HttpGet("https://x/", std::chrono::seconds(1)).has_value());
}

}  // namespace
}  // namespace replboot::api
