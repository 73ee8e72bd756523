// AresResolver against a tiny DNS server running on the same io_context, so
// every answer (and every silence) is under the test's control.
#include "replboot/discovery/ares_resolver.h"

#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <cstdio>
#include <fstream>
#include <map>
#include <stdexcept>

#include <stdlib.h>
#include <unistd.h>

namespace replboot::discovery {
namespace {

namespace asio = boost::asio;
using asio::ip::make_address;
using asio::ip::udp;
using std::chrono::milliseconds;

constexpr uint16_t kTypeA = 1;
constexpr uint16_t kTypeAaaa = 28;
constexpr uint16_t kTypeSrv = 33;
constexpr uint8_t kRcodeServFail = 2;
constexpr uint8_t kRcodeNxDomain = 3;

struct Answer {
  enum Kind { kRecords, kRcode, kDrop } kind = kRecords;
  uint8_t rcode = 0;
  std::vector<asio::ip::address> addresses;
  std::vector<SrvRecord> srv;
};

void Put16(std::string& out, uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}

std::string EncodeName(const std::string& name) {
  std::string out;
  size_t start = 0;
  while (start < name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    out += static_cast<char>(dot - start);
    out += name.substr(start, dot - start);
    start = dot + 1;
  }
  out += '\0';
  return out;
}

// Answers queries from `answers` by name (NXDOMAIN for unknown names); counts
// queries so tests can tell a drop from no traffic at all.
class FakeDnsServer {
 public:
  explicit FakeDnsServer(asio::io_context& io)
      : socket_(io, udp::endpoint(make_address("127.0.0.1"), 0)) {
    Receive();
  }
  std::string Address() const {
    return "127.0.0.1:" + std::to_string(socket_.local_endpoint().port());
  }
  std::map<std::string, Answer> answers;
  int queries = 0;

 private:
  void Receive() {
    socket_.async_receive_from(asio::buffer(buf_), peer_,
                               [this](boost::system::error_code ec, size_t n) {
                                 if (ec) return;
                                 ++queries;
                                 Respond(std::string(buf_.data(), n));
                                 Receive();
                               });
  }

  void Respond(const std::string& query) {
    if (query.size() < 12) return;
    // Question: labels from offset 12, then type and class.
    size_t pos = 12;
    std::string name;
    while (pos < query.size() && query[pos] != 0) {
      size_t len = static_cast<uint8_t>(query[pos]);
      if (!name.empty()) name += '.';
      name += query.substr(pos + 1, len);
      pos += len + 1;
    }
    pos += 1;
    if (pos + 4 > query.size()) return;
    uint16_t type = static_cast<uint16_t>((static_cast<uint8_t>(query[pos]) << 8) |
                                          static_cast<uint8_t>(query[pos + 1]));
    std::string question = query.substr(12, pos + 4 - 12);

    Answer answer;
    if (auto it = answers.find(name); it != answers.end()) {
      answer = it->second;
    } else {
      answer.kind = Answer::kRcode;
      answer.rcode = kRcodeNxDomain;
    }
    if (answer.kind == Answer::kDrop) return;

    std::string records;
    uint16_t count = 0;
    if (answer.kind == Answer::kRecords) {
      for (const auto& a : answer.addresses) {
        if ((type == kTypeA && a.is_v4()) || (type == kTypeAaaa && a.is_v6())) {
          Put16(records, 0xc00c);
          Put16(records, type);
          Put16(records, 1);
          Put16(records, 0);
          Put16(records, 0);  // TTL 0
          if (a.is_v4()) {
            auto bytes = a.to_v4().to_bytes();
            Put16(records, 4);
            records.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
          } else {
            auto bytes = a.to_v6().to_bytes();
            Put16(records, 16);
            records.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
          }
          ++count;
        }
      }
      if (type == kTypeSrv) {
        for (const auto& s : answer.srv) {
          std::string target = EncodeName(s.target);
          Put16(records, 0xc00c);
          Put16(records, kTypeSrv);
          Put16(records, 1);
          Put16(records, 0);
          Put16(records, 0);
          Put16(records, static_cast<uint16_t>(6 + target.size()));
          Put16(records, s.priority);
          Put16(records, s.weight);
          Put16(records, s.port);
          records += target;
          ++count;
        }
      }
    }
    std::string response = query.substr(0, 2);  // id
    uint8_t rcode = answer.kind == Answer::kRcode ? answer.rcode : 0;
    response += static_cast<char>(0x81);          // QR, RD
    response += static_cast<char>(0x80 | rcode);  // RA, rcode
    Put16(response, 1);
    Put16(response, count);
    Put16(response, 0);
    Put16(response, 0);
    response += question + records;
    socket_.send_to(asio::buffer(response), peer_);
  }

  udp::socket socket_;
  udp::endpoint peer_;
  std::array<char, 1500> buf_{};
};

class AresResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // No search domains, so the server sees exactly the names the tests ask for.
    // A file of its own: ctest runs these cases as parallel processes, and a
    // shared name let one case's TearDown delete another's file mid-test.
    char tmpl[] = "/tmp/replboot-resolv-conf-XXXXXX";
    int fd = ::mkstemp(tmpl);
    ASSERT_GE(fd, 0) << "mkstemp " << tmpl;
    ::close(fd);
    resolv_conf_ = tmpl;
    std::ofstream(resolv_conf_) << "nameserver 127.0.0.1\noptions ndots:1\n";
  }
  void TearDown() override { std::remove(resolv_conf_.c_str()); }

  std::unique_ptr<AresResolver> MakeResolver(milliseconds timeout = milliseconds(2000),
                                             int tries = 2) {
    AresOptions o;
    o.servers = {server_.Address()};
    o.resolv_conf = resolv_conf_;
    o.timeout = timeout;
    o.tries = tries;
    auto r = AresResolver::Create(io_.get_executor(), o);
    // Thrown, so gtest fails the case here instead of it using a resolver it never got.
    if (!r) throw std::runtime_error("AresResolver::Create: " + r.error().ToString());
    return std::move(*r);
  }

  template <typename T>
  T Run(asio::awaitable<T> op) {
    std::optional<T> out;
    asio::co_spawn(io_, std::move(op), [&](std::exception_ptr e, T value) {
      EXPECT_FALSE(e);
      out = std::move(value);
    });
    RunUntil([&] { return out.has_value(); });
    EXPECT_TRUE(out.has_value()) << "the lookup did not complete";
    return std::move(*out);
  }

  // Runs the loop until `done` (the fake server keeps it busy forever), at most 10 s.
  template <typename Done>
  void RunUntil(Done done) {
    io_.restart();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < deadline)
      io_.run_one_for(milliseconds(100));
  }

  asio::io_context io_;
  FakeDnsServer server_{io_};
  std::string resolv_conf_;
};

TEST_F(AresResolverTest, ResolvesAAndAaaaIpv4First) {
  server_.answers["peer.test"].addresses = {make_address("::1"), make_address("127.0.0.7"),
                                            make_address("127.0.0.8")};
  auto r = MakeResolver();
  auto result = Run(r->ResolveAddresses("peer.test"));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(*result,
            (std::vector<asio::ip::address>{make_address("127.0.0.7"), make_address("127.0.0.8"),
                                            make_address("::1")}));
}

TEST_F(AresResolverTest, AaaaOnlyName) {
  server_.answers["v6.test"].addresses = {make_address("::1")};
  auto r = MakeResolver();
  auto result = Run(r->ResolveAddresses("v6.test"));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(*result, std::vector<asio::ip::address>{make_address("::1")});
}

TEST_F(AresResolverTest, NxDomainIsDistinguished) {
  auto r = MakeResolver();
  auto result = Run(r->ResolveAddresses("missing.test"));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().error, LookupError::kNxDomain);
  EXPECT_NE(result.error().message.find("missing.test"), std::string::npos);
  EXPECT_NE(result.error().message.find(server_.Address()), std::string::npos);
  EXPECT_EQ(result.error().ToStatus().code(), StatusCode::kNotFound);
}

TEST_F(AresResolverTest, ServFailIsDistinguished) {
  server_.answers["broken.test"].kind = Answer::kRcode;
  server_.answers["broken.test"].rcode = kRcodeServFail;
  auto r = MakeResolver();
  auto result = Run(r->ResolveAddresses("broken.test"));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().error, LookupError::kServFail) << result.error().message;
  EXPECT_NE(result.error().message.find("SERVFAIL"), std::string::npos) << result.error().message;
}

TEST_F(AresResolverTest, SilentServerTimesOut) {
  server_.answers["silent.test"].kind = Answer::kDrop;
  auto r = MakeResolver(milliseconds(100), 2);
  auto start = std::chrono::steady_clock::now();
  auto result = Run(r->ResolveAddresses("silent.test"));
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().error, LookupError::kTimeout) << result.error().message;
  EXPECT_EQ(result.error().ToStatus().code(), StatusCode::kTimeout);
  EXPECT_GE(elapsed, milliseconds(100));
  EXPECT_LT(elapsed, milliseconds(3000));
  EXPECT_GE(server_.queries, 2);  // the c-ares timer drove the retransmission
}

TEST_F(AresResolverTest, SrvRecords) {
  server_.answers["_backup._tcp.svc.test"].srv = {{"mysql-1.svc.test", 4401, 1, 2},
                                                  {"mysql-0.svc.test", 4400, 0, 0}};
  auto r = MakeResolver();
  auto result = Run(r->ResolveSrv("_backup._tcp.svc.test"));
  ASSERT_TRUE(result) << result.error().message;
  ASSERT_EQ(result->size(), 2u);
  std::map<std::string, uint16_t> ports;
  for (const auto& s : *result) ports[s.target] = s.port;
  EXPECT_EQ(ports["mysql-1.svc.test"], 4401);
  EXPECT_EQ(ports["mysql-0.svc.test"], 4400);
}

TEST_F(AresResolverTest, SrvNxDomain) {
  auto r = MakeResolver();
  auto result = Run(r->ResolveSrv("_none._tcp.svc.test"));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().error, LookupError::kNxDomain);
}

// The names are formatted, not built with "n" + std::to_string(i) + ".test": GCC 12 at -O3
// inlines that operator+ chain and reports a false -Wrestrict overlap in memcpy (GCC PR 105651).
std::string NumberedName(int i) { return fmt::format("n{}.test", i); }

TEST_F(AresResolverTest, ManyLookupsAtOnce) {
  for (int i = 0; i < 20; ++i) {
    server_.answers[NumberedName(i)].addresses = {
        asio::ip::make_address_v4(0x7f000100u + static_cast<unsigned>(i))};
  }
  auto r = MakeResolver();
  int done = 0;
  for (int i = 0; i < 20; ++i) {
    asio::co_spawn(io_, r->ResolveAddresses(NumberedName(i)),
                   [&, i](std::exception_ptr, Lookup<std::vector<asio::ip::address>> result) {
                     ASSERT_TRUE(result) << result.error().message;
                     EXPECT_EQ(result->at(0),
                               asio::ip::make_address_v4(0x7f000100u + static_cast<unsigned>(i)));
                     ++done;
                   });
  }
  RunUntil([&] { return done == 20; });
  EXPECT_EQ(done, 20);
}

TEST_F(AresResolverTest, PerOperationCancellation) {
  server_.answers["silent.test"].kind = Answer::kDrop;
  auto r = MakeResolver(milliseconds(5000), 3);
  asio::cancellation_signal cancel;
  std::optional<Lookup<std::vector<asio::ip::address>>> out;
  asio::co_spawn(
      io_, r->ResolveAddresses("silent.test"),
      asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, auto result) {
        EXPECT_FALSE(e);
        out = std::move(result);
      }));
  asio::steady_timer t(io_, milliseconds(50));
  t.async_wait([&](auto) { cancel.emit(asio::cancellation_type::terminal); });
  auto start = std::chrono::steady_clock::now();
  RunUntil([&] { return out.has_value(); });
  ASSERT_TRUE(out);
  ASSERT_FALSE(*out);
  EXPECT_EQ(out->error().error, LookupError::kCancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
  // The resolver is still usable afterwards.
  server_.answers["later.test"].addresses = {make_address("127.0.0.9")};
  auto later = Run(r->ResolveAddresses("later.test"));
  ASSERT_TRUE(later) << later.error().message;
}

TEST_F(AresResolverTest, CancelFailsPendingLookups) {
  server_.answers["silent.test"].kind = Answer::kDrop;
  auto r = MakeResolver(milliseconds(5000), 3);
  std::optional<Lookup<std::vector<SrvRecord>>> out;
  asio::co_spawn(io_, r->ResolveSrv("silent.test"),
                 [&](std::exception_ptr, auto result) { out = std::move(result); });
  asio::steady_timer t(io_, milliseconds(50));
  t.async_wait([&](auto) { r->Cancel(); });
  RunUntil([&] { return out.has_value(); });
  ASSERT_TRUE(out);
  ASSERT_FALSE(*out);
  EXPECT_EQ(out->error().error, LookupError::kCancelled);
}

TEST_F(AresResolverTest, DestroyWithAPendingLookupCompletesItAsCancelled) {
  server_.answers["silent.test"].kind = Answer::kDrop;
  auto r = MakeResolver(milliseconds(5000), 3);
  std::optional<Lookup<std::vector<asio::ip::address>>> out;
  asio::co_spawn(io_, r->ResolveAddresses("silent.test"),
                 [&](std::exception_ptr, auto result) { out = std::move(result); });
  io_.run_for(milliseconds(100));
  EXPECT_GE(server_.queries, 1);
  EXPECT_FALSE(out);
  r.reset();
  RunUntil([&] { return out.has_value(); });
  ASSERT_TRUE(out);
  ASSERT_FALSE(*out);
  EXPECT_EQ(out->error().error, LookupError::kCancelled);
}

TEST_F(AresResolverTest, DestroyWithAPendingLookupAndNoMoreLoop) {
  // The loop never runs again: the posted completion is destroyed with the
  // io_context. Under ASan this proves nothing leaks on that path either.
  server_.answers["silent.test"].kind = Answer::kDrop;
  auto r = MakeResolver(milliseconds(5000), 3);
  asio::co_spawn(io_, r->ResolveAddresses("silent.test"), [](std::exception_ptr, auto) {});
  io_.run_for(milliseconds(100));
  r.reset();
}

TEST_F(AresResolverTest, BadServerListIsAnInvalidArgument) {
  AresOptions o;
  o.servers = {"not an address"};
  o.resolv_conf = resolv_conf_;
  auto r = AresResolver::Create(io_.get_executor(), o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("not an address"), std::string::npos);
}

TEST_F(AresResolverTest, MissingResolvConfIsAnInvalidArgument) {
  AresOptions o;
  o.resolv_conf = resolv_conf_ + ".missing";
  auto r = AresResolver::Create(io_.get_executor(), o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find(o.resolv_conf), std::string::npos) << r.error().message();
}

TEST_F(AresResolverTest, ResolvConfSearchDomainsApply) {
  std::ofstream(resolv_conf_)
      << "search ns.svc.cluster.local\noptions ndots:5\nnameserver 127.0.0.1\n";
  server_.answers["mysql-0.mysql.ns.svc.cluster.local"].addresses = {make_address("127.0.0.10")};
  auto r = MakeResolver();
  auto result = Run(r->ResolveAddresses("mysql-0.mysql"));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(*result, std::vector<asio::ip::address>{make_address("127.0.0.10")});
}

}  // namespace
}  // namespace replboot::discovery
