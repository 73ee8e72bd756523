#include "replboot/discovery/prober.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <optional>

namespace replboot::discovery {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using std::chrono::milliseconds;

Status Probe(asio::io_context& io, TcpProber& prober, tcp::endpoint endpoint) {
  std::optional<Status> out;
  asio::co_spawn(io, prober.Probe({}, endpoint), [&](std::exception_ptr e, Status s) {
    EXPECT_FALSE(e);
    out = std::move(s);
  });
  io.run();
  io.restart();
  EXPECT_TRUE(out);
  return out.value_or(Status(StatusCode::kInternal, "no result"));
}

TEST(TcpProberTest, ListeningEndpointAnswers) {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  TcpProber prober(milliseconds(2000));
  Status s = Probe(io, prober, acceptor.local_endpoint());
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(TcpProberTest, ClosedPortIsUnavailableAndNamesTheEndpoint) {
  asio::io_context io;
  uint16_t port;
  {
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = acceptor.local_endpoint().port();
  }  // closed again: nothing listens there now
  TcpProber prober(milliseconds(2000));
  Status s = Probe(io, prober, tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << s.message();
}

// A listener whose accept queue is full: the kernel drops further SYNs, so a
// connect to it neither succeeds nor fails until its deadline.
class BlackHole {
 public:
  explicit BlackHole(asio::io_context& io) : acceptor_(io) {
    tcp::endpoint local(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(local.protocol());
    acceptor_.bind(local);
    acceptor_.listen(0);
    // Raw non-blocking connects: asio's synchronous connect would wait for them.
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(acceptor_.local_endpoint().port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 4; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      (void)::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
      fillers_.push_back(fd);
    }
  }
  ~BlackHole() {
    for (int fd : fillers_) ::close(fd);
  }
  tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }

 private:
  tcp::acceptor acceptor_;
  std::vector<int> fillers_;
};

TEST(TcpProberTest, SilentEndpointTimesOut) {
  asio::io_context io;
  BlackHole hole(io);
  TcpProber prober(milliseconds(200));
  auto start = std::chrono::steady_clock::now();
  Status s = Probe(io, prober, hole.endpoint());
  EXPECT_EQ(s.code(), StatusCode::kTimeout) << s.ToString();
  EXPECT_NE(s.message().find("200 ms"), std::string::npos) << s.message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
}

TEST(TcpProberTest, CancellationAbortsTheProbe) {
  asio::io_context io;
  BlackHole hole(io);
  TcpProber prober(milliseconds(30000));
  asio::cancellation_signal cancel;
  std::optional<Status> out;
  asio::co_spawn(
      io, prober.Probe({}, hole.endpoint()),
      asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr, Status s) { out = s; }));
  asio::steady_timer t(io, milliseconds(50));
  t.async_wait([&](auto) { cancel.emit(asio::cancellation_type::terminal); });
  auto start = std::chrono::steady_clock::now();
  io.run();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->code(), StatusCode::kCancelled) << out->ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
}

}  // namespace
}  // namespace replboot::discovery
