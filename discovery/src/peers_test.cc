#include "replboot/discovery/peers.h"

#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <set>

namespace replboot::discovery {
namespace {

namespace asio = boost::asio;
using asio::ip::make_address;
using std::chrono::milliseconds;

// Answers from a table; a name can be made to fail its first N lookups.
class FakeResolver : public Resolver {
 public:
  std::map<std::string, std::vector<asio::ip::address>> hosts;
  std::map<std::string, LookupError> failures;  // permanent failure of a name
  std::map<std::string, int> nxdomain_first;    // NXDOMAIN for the first N lookups
  std::vector<SrvRecord> srv;
  std::optional<LookupError> srv_failure;
  std::map<std::string, int> lookups;
  std::vector<std::string> srv_lookups;

  asio::awaitable<Lookup<std::vector<asio::ip::address>>> ResolveAddresses(
      std::string name) override {
    int n = ++lookups[name];
    auto fail = [&](LookupError e) {
      return tl::unexpected(LookupFailure{e, name + ": " + std::string(LookupErrorName(e))});
    };
    if (auto it = failures.find(name); it != failures.end()) co_return fail(it->second);
    if (auto it = nxdomain_first.find(name); it != nxdomain_first.end() && n <= it->second) {
      co_return fail(LookupError::kNxDomain);
    }
    if (auto it = hosts.find(name); it != hosts.end()) co_return it->second;
    co_return fail(LookupError::kNxDomain);
  }
  asio::awaitable<Lookup<std::vector<SrvRecord>>> ResolveSrv(std::string name) override {
    srv_lookups.push_back(name);
    if (srv_failure) co_return tl::unexpected(LookupFailure{*srv_failure, name});
    co_return srv;
  }
  void Cancel() override {}
};

// Endpoints in `up` answer; everything else is refused. Records every probe.
class FakeProber : public Prober {
 public:
  std::set<asio::ip::tcp::endpoint> up;
  // Endpoints that answer but say no for good (an authenticated prober's wrong secret).
  std::map<asio::ip::tcp::endpoint, Status> refusing;
  std::vector<asio::ip::tcp::endpoint> probed;
  std::vector<int64_t> probed_ordinals;  // the candidate each probe was for
  asio::awaitable<Status> Probe(Candidate candidate, asio::ip::tcp::endpoint endpoint) override {
    probed.push_back(endpoint);
    probed_ordinals.push_back(candidate.ordinal);
    if (up.count(endpoint)) co_return Status::Ok();
    if (auto it = refusing.find(endpoint); it != refusing.end()) co_return it->second;
    co_return Status(StatusCode::kUnavailable, "refused");
  }
};

asio::ip::tcp::endpoint Ep(const char* addr, uint16_t port = 3307) {
  return {make_address(addr), port};
}

DiscoverOptions Options(int64_t ordinal, Policy policy = Policy::kNearestLower) {
  DiscoverOptions o;
  o.candidates = Candidates(ordinal, "mysql", "mysql", policy);
  o.default_port = 3307;
  o.deadline = milliseconds(2000);
  o.backoff.initial = milliseconds(2);
  o.backoff.max = milliseconds(10);
  o.random = [] { return 0.5; };
  return o;
}

Discovery Discover(Resolver& resolver, Prober& prober, DiscoverOptions options) {
  asio::io_context io;
  std::optional<Discovery> out;
  asio::co_spawn(io, DiscoverPeers(resolver, prober, std::move(options)),
                 [&](std::exception_ptr e, Discovery d) {
                   EXPECT_FALSE(e);
                   out = std::move(d);
                 });
  io.run();
  EXPECT_TRUE(out.has_value());
  return out.value_or(Discovery{});
}

TEST(CandidateOrdinalsTest, NearestLowerCountsDownToZero) {
  EXPECT_EQ(CandidateOrdinals(3, Policy::kNearestLower), (std::vector<int64_t>{2, 1, 0}));
  EXPECT_EQ(CandidateOrdinals(1, Policy::kNearestLower), (std::vector<int64_t>{0}));
}

TEST(CandidateOrdinalsTest, PrimaryIsOnlyZero) {
  EXPECT_EQ(CandidateOrdinals(5, Policy::kPrimary), (std::vector<int64_t>{0}));
}

TEST(CandidateOrdinalsTest, AnyReplicaEndsWithThePrimary) {
  EXPECT_EQ(CandidateOrdinals(3, Policy::kAnyReplica), (std::vector<int64_t>{2, 1, 0}));
}

TEST(CandidateOrdinalsTest, ThePrimaryHasNoCandidates) {
  for (Policy p : {Policy::kNearestLower, Policy::kPrimary, Policy::kAnyReplica}) {
    EXPECT_TRUE(CandidateOrdinals(0, p).empty());
    EXPECT_TRUE(CandidateOrdinals(-1, p).empty());
  }
}

TEST(CandidatesTest, NamesComeFromPrefixAndService) {
  auto c = Candidates(3, "db-main", "db-headless", Policy::kNearestLower);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].name, "db-main-2.db-headless");
  EXPECT_EQ(c[0].ordinal, 2);
  EXPECT_EQ(c[2].name, "db-main-0.db-headless");
}

TEST(ParsePolicyTest, KnownAndUnknown) {
  EXPECT_EQ(ParsePolicy("nearest-lower").value(), Policy::kNearestLower);
  EXPECT_EQ(ParsePolicy("primary").value(), Policy::kPrimary);
  EXPECT_EQ(ParsePolicy("any-replica").value(), Policy::kAnyReplica);
  auto bad = ParsePolicy("nearest");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.error().message().find("\"nearest\""), std::string::npos);
  for (Policy p : {Policy::kNearestLower, Policy::kPrimary, Policy::kAnyReplica}) {
    EXPECT_EQ(ParsePolicy(PolicyName(p)).value(), p);
  }
}

TEST(SrvPortForTest, MatchesTheNameOrTheNameUnderADomain) {
  std::vector<SrvRecord> records = {
      {"mysql-10.mysql.ns.svc.cluster.local", 4000, 0, 0},
      {"MySQL-1.mysql.ns.svc.cluster.local.", 4001, 0, 0},
      {"mysql-2.mysql", 4002, 0, 0},
  };
  EXPECT_EQ(SrvPortFor(records, "mysql-1.mysql"), 4001);  // not mysql-10's
  EXPECT_EQ(SrvPortFor(records, "mysql-10.mysql"), 4000);
  EXPECT_EQ(SrvPortFor(records, "mysql-2.mysql"), 4002);
  EXPECT_EQ(SrvPortFor(records, "mysql-3.mysql"), std::nullopt);
  EXPECT_EQ(SrvPortFor(records, ""), std::nullopt);
}

TEST(BackoffDelayTest, GrowsIsCappedAndJittered) {
  Backoff b;
  b.initial = milliseconds(100);
  b.max = milliseconds(1000);
  EXPECT_EQ(BackoffDelay(b, 1, 0.0), milliseconds(50));
  EXPECT_EQ(BackoffDelay(b, 1, 0.999999), milliseconds(99));
  EXPECT_EQ(BackoffDelay(b, 2, 0.0), milliseconds(100));
  EXPECT_EQ(BackoffDelay(b, 3, 0.0), milliseconds(200));
  EXPECT_EQ(BackoffDelay(b, 20, 0.0), milliseconds(500));  // capped at max, half jitter
  EXPECT_EQ(BackoffDelay(b, 20, 1.0), milliseconds(1000));
  EXPECT_EQ(BackoffDelay(b, 0, 0.0), milliseconds(50));  // attempt counts from 1
}

TEST(PickDonorTest, FirstReachableInCandidateOrder) {
  std::vector<PeerReport> reports(3);
  EXPECT_EQ(PickDonor(reports), std::nullopt);
  reports[0].state = PeerState::kUnreachable;
  reports[1].state = PeerState::kReachable;
  reports[2].state = PeerState::kReachable;
  EXPECT_EQ(PickDonor(reports), 1u);
}

TEST(DiscoverPeersTest, AllPresentChoosesTheNearestLower) {
  FakeResolver r;
  r.hosts = {{"mysql-2.mysql", {make_address("127.0.0.12")}},
             {"mysql-1.mysql", {make_address("127.0.0.11")}},
             {"mysql-0.mysql", {make_address("127.0.0.10")}}};
  FakeProber p;
  p.up = {Ep("127.0.0.12"), Ep("127.0.0.11"), Ep("127.0.0.10")};
  Discovery d = Discover(r, p, Options(3));
  ASSERT_TRUE(d.Donor());
  EXPECT_EQ(d.Donor()->candidate.ordinal, 2);
  EXPECT_EQ(*d.Donor()->answered, Ep("127.0.0.12"));
  EXPECT_EQ(d.rounds, 1);
  // Without probe_all the others are neither resolved nor probed.
  EXPECT_EQ(d.peers[1].state, PeerState::kNotTried);
  EXPECT_EQ(r.lookups.count("mysql-1.mysql"), 0u);
  EXPECT_EQ(p.probed.size(), 1u);
}

TEST(DiscoverPeersTest, NearestDownFallsToTheNextLower) {
  FakeResolver r;
  r.hosts = {{"mysql-2.mysql", {make_address("127.0.0.12")}},
             {"mysql-1.mysql", {make_address("127.0.0.11")}},
             {"mysql-0.mysql", {make_address("127.0.0.10")}}};
  FakeProber p;
  p.up = {Ep("127.0.0.11"), Ep("127.0.0.10")};
  auto o = Options(3);
  o.probe_all = true;
  Discovery d = Discover(r, p, o);
  ASSERT_TRUE(d.Donor());
  EXPECT_EQ(d.Donor()->candidate.name, "mysql-1.mysql");
  EXPECT_EQ(d.peers[0].state, PeerState::kUnreachable);
  EXPECT_NE(d.peers[0].detail.find("refused"), std::string::npos);
  EXPECT_EQ(d.peers[2].state, PeerState::kReachable);  // probe_all: the table shows it too
}

// Each address is probed as the candidate it belongs to, so that an authenticated prober can
// insist that the node there is that very ordinal; another node answering is a refusal.
TEST(DiscoverPeersTest, EachProbeIsForItsOwnCandidate) {
  FakeResolver r;
  r.hosts = {{"mysql-2.mysql", {make_address("127.0.0.12")}},
             {"mysql-1.mysql", {make_address("127.0.0.11"), make_address("127.0.0.21")}},
             {"mysql-0.mysql", {make_address("127.0.0.10")}}};
  FakeProber p;
  p.up = {Ep("127.0.0.10")};
  p.refusing[Ep("127.0.0.12")] =
      Status(StatusCode::kPermissionDenied, "127.0.0.12:3307 answered as mysql-1 (ordinal 1)");
  auto o = Options(3);
  o.probe_all = true;
  Discovery d = Discover(r, p, o);
  EXPECT_EQ(p.probed, (std::vector<asio::ip::tcp::endpoint>{Ep("127.0.0.12"), Ep("127.0.0.11"),
                                                            Ep("127.0.0.21"), Ep("127.0.0.10")}));
  EXPECT_EQ(p.probed_ordinals, (std::vector<int64_t>{2, 1, 1, 0}));
  EXPECT_EQ(d.peers[0].state, PeerState::kRefused);
  EXPECT_NE(d.peers[0].detail.find("answered as mysql-1"), std::string::npos) << d.peers[0].detail;
  ASSERT_TRUE(d.Donor());
  EXPECT_EQ(d.Donor()->candidate.ordinal, 0);
}

TEST(DiscoverPeersTest, TriesEveryAddressOfAPeer) {
  FakeResolver r;
  r.hosts = {{"mysql-0.mysql", {make_address("127.0.0.9"), make_address("::1")}}};
  FakeProber p;
  p.up = {Ep("::1")};
  Discovery d = Discover(r, p, Options(1));
  ASSERT_TRUE(d.Donor());
  EXPECT_EQ(*d.Donor()->answered, Ep("::1"));
  EXPECT_EQ(p.probed.size(), 2u);
}

TEST(DiscoverPeersTest, NxDomainIsRetriedUntilTheNameAppears) {
  FakeResolver r;
  r.hosts = {{"mysql-0.mysql", {make_address("127.0.0.10")}}};
  r.nxdomain_first = {{"mysql-0.mysql", 3}};
  FakeProber p;
  p.up = {Ep("127.0.0.10")};
  Discovery d = Discover(r, p, Options(1));
  ASSERT_TRUE(d.Donor());
  EXPECT_EQ(d.rounds, 4);
  EXPECT_EQ(r.lookups["mysql-0.mysql"], 4);
  EXPECT_EQ(d.Donor()->lookups, 4);
}

TEST(DiscoverPeersTest, SingleRoundProbesEveryoneOnceAndNeverRetries) {
  FakeResolver r;
  r.hosts = {{"mysql-1.mysql", {make_address("127.0.0.11")}}};
  r.nxdomain_first = {{"mysql-1.mysql", 3}};  // would appear in the 4th round
  FakeProber p;
  p.up = {Ep("127.0.0.11")};
  auto o = Options(3);
  o.single_round = true;
  o.probe_all = true;
  Discovery d = Discover(r, p, o);
  EXPECT_EQ(d.rounds, 1);
  EXPECT_FALSE(d.Donor());
  EXPECT_FALSE(d.deadline_passed);  // not a deadline: the caller decides what comes next
  EXPECT_EQ(r.lookups["mysql-1.mysql"], 1);
}

TEST(DiscoverPeersTest, GivesUpAtTheDeadline) {
  FakeResolver r;  // nothing in DNS
  FakeProber p;
  auto o = Options(2);
  o.deadline = milliseconds(60);
  auto start = std::chrono::steady_clock::now();
  Discovery d = Discover(r, p, o);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(d.Donor());
  EXPECT_TRUE(d.deadline_passed);
  EXPECT_GT(d.rounds, 2);
  EXPECT_GE(elapsed, milliseconds(60));
  EXPECT_LT(elapsed, milliseconds(1000));
  ASSERT_TRUE(d.peers[0].dns_failure);
  EXPECT_EQ(d.peers[0].dns_failure->error, LookupError::kNxDomain);
  EXPECT_EQ(d.peers[0].state, PeerState::kDnsFailed);
}

TEST(DiscoverPeersTest, ServFailAndTimeoutAreRetriedButOtherErrorsAreNot) {
  for (LookupError e : {LookupError::kServFail, LookupError::kTimeout, LookupError::kNoData}) {
    FakeResolver r;
    r.failures = {{"mysql-0.mysql", e}};
    FakeProber p;
    auto o = Options(1);
    o.deadline = milliseconds(30);
    Discovery d = Discover(r, p, o);
    EXPECT_TRUE(d.deadline_passed) << LookupErrorName(e);
    EXPECT_GT(d.rounds, 1) << LookupErrorName(e);
    EXPECT_EQ(d.peers[0].dns_failure->error, e);
  }
  FakeResolver r;
  r.failures = {{"mysql-0.mysql", LookupError::kOther}};
  FakeProber p;
  Discovery d = Discover(r, p, Options(1));
  EXPECT_FALSE(d.deadline_passed);
  EXPECT_EQ(d.rounds, 1);
}

TEST(DiscoverPeersTest, UnreachablePeersAreRetried) {
  FakeResolver r;
  r.hosts = {{"mysql-0.mysql", {make_address("127.0.0.10")}}};
  FakeProber p;
  auto o = Options(1);
  o.deadline = milliseconds(30);
  Discovery d = Discover(r, p, o);
  EXPECT_FALSE(d.Donor());
  EXPECT_TRUE(d.deadline_passed);
  EXPECT_GT(d.rounds, 1);
  EXPECT_EQ(d.peers[0].state, PeerState::kUnreachable);
}

TEST(DiscoverPeersTest, RefusingPeersAreSkippedAndNotRetried) {
  FakeResolver r;
  r.hosts = {{"mysql-1.mysql", {make_address("127.0.0.11")}},
             {"mysql-0.mysql", {make_address("127.0.0.10")}}};
  FakeProber p;
  p.refusing = {
      {Ep("127.0.0.11"), Status(StatusCode::kPermissionDenied, "authentication failed at x")},
      {Ep("127.0.0.10"), Status(StatusCode::kInvalidArgument, "donor runs 10.6 (10.6 vs 10.11)")}};
  auto o = Options(2);
  o.deadline = milliseconds(1000);
  Discovery d = Discover(r, p, o);
  EXPECT_FALSE(d.Donor());
  EXPECT_EQ(d.rounds, 1);  // nothing worth retrying
  EXPECT_FALSE(d.deadline_passed);
  EXPECT_EQ(d.peers[0].state, PeerState::kRefused);
  EXPECT_EQ(d.peers[0].Summary(), "refused: authentication failed at x");
  EXPECT_EQ(d.peers[1].state, PeerState::kRefused);
  EXPECT_NE(d.peers[1].detail.find("10.6 vs 10.11"), std::string::npos);
}

TEST(DiscoverPeersTest, ARefusalNextToAnUnreachablePeerIsStillRetried) {
  FakeResolver r;
  r.hosts = {{"mysql-1.mysql", {make_address("127.0.0.11")}},
             {"mysql-0.mysql", {make_address("127.0.0.10")}}};
  FakeProber p;
  p.refusing = {{Ep("127.0.0.11"), Status(StatusCode::kPermissionDenied, "wrong secret")}};
  auto o = Options(2);
  o.deadline = milliseconds(30);
  Discovery d = Discover(r, p, o);
  EXPECT_FALSE(d.Donor());
  EXPECT_GT(d.rounds, 1);  // mysql-0 may still come up
  EXPECT_EQ(d.peers[0].state, PeerState::kRefused);
  EXPECT_EQ(d.peers[1].state, PeerState::kUnreachable);
}

TEST(DiscoverPeersTest, ThePrimaryHasNothingToDiscover) {
  FakeResolver r;
  FakeProber p;
  Discovery d = Discover(r, p, Options(0));
  EXPECT_TRUE(d.peers.empty());
  EXPECT_FALSE(d.Donor());
  EXPECT_TRUE(r.lookups.empty());
}

TEST(DiscoverPeersTest, PrimaryPolicyOnlyTriesZero) {
  FakeResolver r;
  r.hosts = {{"mysql-2.mysql", {make_address("127.0.0.12")}},
             {"mysql-0.mysql", {make_address("127.0.0.10")}}};
  FakeProber p;
  p.up = {Ep("127.0.0.12"), Ep("127.0.0.10")};
  Discovery d = Discover(r, p, Options(3, Policy::kPrimary));
  ASSERT_TRUE(d.Donor());
  EXPECT_EQ(d.Donor()->candidate.ordinal, 0);
  EXPECT_EQ(d.peers.size(), 1u);
}

TEST(DiscoverPeersTest, AnyReplicaHoldsThePrimaryBack) {
  FakeResolver r;
  r.hosts = {{"mysql-1.mysql", {make_address("127.0.0.11")}},
             {"mysql-0.mysql", {make_address("127.0.0.10")}}};
  FakeProber p;
  p.up = {Ep("127.0.0.10")};  // the only replica candidate is down

  Discovery nearest = Discover(r, p, Options(2, Policy::kNearestLower));
  ASSERT_TRUE(nearest.Donor());
  EXPECT_EQ(nearest.Donor()->candidate.ordinal, 0);
  EXPECT_EQ(nearest.rounds, 1);

  auto o = Options(2, Policy::kAnyReplica);
  o.primary_after = milliseconds(50);
  auto start = std::chrono::steady_clock::now();
  Discovery any = Discover(r, p, o);
  ASSERT_TRUE(any.Donor());
  EXPECT_EQ(any.Donor()->candidate.ordinal, 0);
  EXPECT_GT(any.rounds, 1);
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(50));
}

TEST(DiscoverPeersTest, AnyReplicaTakesThePrimaryAtOnceWhenItIsTheOnlyCandidate) {
  FakeResolver r;
  r.hosts = {{"mysql-0.mysql", {make_address("127.0.0.10")}}};
  FakeProber p;
  p.up = {Ep("127.0.0.10")};
  auto o = Options(1, Policy::kAnyReplica);
  o.primary_after = milliseconds(60000);
  Discovery d = Discover(r, p, o);
  ASSERT_TRUE(d.Donor());
  EXPECT_EQ(d.rounds, 1);
}

TEST(DiscoverPeersTest, SrvGivesThePorts) {
  FakeResolver r;
  r.hosts = {{"mysql-1.mysql", {make_address("127.0.0.11")}},
             {"mysql-0.mysql", {make_address("127.0.0.10")}}};
  r.srv = {{"mysql-1.mysql.ns.svc.cluster.local", 4401, 0, 0}};
  FakeProber p;
  p.up = {Ep("127.0.0.11", 4401), Ep("127.0.0.10", 3307)};
  auto o = Options(2);
  o.srv_name = "_backup._tcp.mysql";
  o.probe_all = true;
  Discovery d = Discover(r, p, o);
  ASSERT_TRUE(d.Donor());
  EXPECT_EQ(*d.Donor()->answered, Ep("127.0.0.11", 4401));
  EXPECT_TRUE(d.peers[0].port_from_srv);
  EXPECT_FALSE(d.peers[1].port_from_srv);  // no record: the configured port
  EXPECT_EQ(d.peers[1].port, 3307);
  EXPECT_EQ(r.srv_lookups, std::vector<std::string>{"_backup._tcp.mysql"});
}

TEST(DiscoverPeersTest, FailedSrvFallsBackToTheConfiguredPort) {
  FakeResolver r;
  r.hosts = {{"mysql-0.mysql", {make_address("127.0.0.10")}}};
  r.srv_failure = LookupError::kNxDomain;
  FakeProber p;
  p.up = {Ep("127.0.0.10", 3307)};
  auto o = Options(1);
  o.srv_name = "_backup._tcp.mysql";
  Discovery d = Discover(r, p, o);
  ASSERT_TRUE(d.Donor());
  EXPECT_EQ(d.Donor()->port, 3307);
}

TEST(DiscoverPeersTest, CancellationStopsABackoffAtOnce) {
  FakeResolver r;  // NXDOMAIN forever
  FakeProber p;
  auto o = Options(1);
  o.deadline = milliseconds(60000);
  o.backoff.initial = milliseconds(30000);
  o.backoff.max = milliseconds(30000);
  asio::io_context io;
  asio::cancellation_signal cancel;
  std::optional<Discovery> out;
  asio::co_spawn(
      io, DiscoverPeers(r, p, o),
      asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, Discovery d) {
        EXPECT_FALSE(e);
        out = std::move(d);
      }));
  asio::steady_timer later(io, milliseconds(20));
  later.async_wait(
      [&](boost::system::error_code) { cancel.emit(asio::cancellation_type::terminal); });
  auto start = std::chrono::steady_clock::now();
  io.run();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
  ASSERT_TRUE(out);
  EXPECT_TRUE(out->cancelled);
  EXPECT_FALSE(out->Donor());
}

TEST(PeerReportTest, SummarySaysWhy) {
  PeerReport p;
  p.state = PeerState::kDnsFailed;
  p.dns_failure = LookupFailure{LookupError::kServFail, "DNS lookup of x failed"};
  EXPECT_EQ(p.Summary(), "servfail: DNS lookup of x failed");
  p.state = PeerState::kUnreachable;
  p.detail = "127.0.0.1:3307: Connection refused";
  EXPECT_EQ(p.Summary(), "unreachable: 127.0.0.1:3307: Connection refused");
  p.state = PeerState::kReachable;
  p.answered = Ep("::1", 3307);
  EXPECT_EQ(p.Summary(), "reachable at [::1]:3307");
}

}  // namespace
}  // namespace replboot::discovery
