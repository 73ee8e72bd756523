// The S3 store against a real S3 server: moto_server with authentication on, behind
// tests/harness/fault_proxy.py (which also checks every signature and payload hash the way
// AWS does), both run by tests/harness/s3_fixture.py and driven over its stdin/stdout.
// Only loopback; the fixture (and with it moto) ends with this process.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "replboot/base/process.h"
#include "replboot/store/object_store.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::store {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

std::vector<uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

class Fixture {
 public:
  void Start(const std::string& workdir) {
    const char* script = std::getenv("REPLBOOT_S3_FIXTURE");
    const char* python = std::getenv("REPLBOOT_PYTHON");
    ASSERT_NE(script, nullptr) << "REPLBOOT_S3_FIXTURE is not set (run through ctest)";
    process::SpawnOptions options;
    options.argv = {python != nullptr ? python : "python3", script, workdir};
    options.env = process::ChildEnvironment();
    options.stdin_mode = process::Stdio::kPipe;
    options.stdout_mode = process::Stdio::kPipe;
    options.parent_death_signal = SIGTERM;
    auto child = process::Spawn(options);
    ASSERT_TRUE(child) << child.error().ToString();
    child_ = *child;
    std::string line = ReadLine();
    ASSERT_FALSE(line.empty()) << "s3_fixture.py ended before it was ready (is moto_server "
                                  "installed? see its stderr above)";
    info_ = Json::parse(line);
  }

  ~Fixture() { Stop(); }

  void Stop() {
    if (child_.pid < 0) return;
    ::close(child_.stdin_fd);  // EOF: the fixture stops the proxy and moto
    auto status = process::Wait(child_.pid, 30s);
    if (!status) {
      ::kill(child_.pid, SIGKILL);
      (void)process::Wait(child_.pid);
    }
    ::close(child_.stdout_fd);
    child_.pid = -1;
  }

  Json Command(const Json& cmd) {
    std::string line = cmd.dump() + "\n";
    EXPECT_EQ(::write(child_.stdin_fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
    Json reply = Json::parse(ReadLine());
    EXPECT_TRUE(reply.value("ok", false)) << reply.dump();
    return reply;
  }
  int Requests() { return Command({{"cmd", "requests"}})["requests"].get<int>(); }

  std::string Get(const char* field) const { return info_.at(field).get<std::string>(); }

 private:
  std::string ReadLine() {
    std::string line;
    char c;
    while (::read(child_.stdout_fd, &c, 1) == 1) {
      if (c == '\n') return line;
      line += c;
    }
    return line;
  }

  process::Child child_;
  Json info_;
};

class S3StoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir("s3-it");
    fixture_ = new Fixture();
    fixture_->Start(dir_->path());
    if (::testing::Test::HasFatalFailure()) return;
    fixture_->Command({{"cmd", "create_bucket"}, {"name", "backups"}});
  }
  static void TearDownTestSuite() {
    delete fixture_;
    delete dir_;
  }
  void SetUp() override {
    ASSERT_NE(fixture_, nullptr);
    fixture_->Command({{"cmd", "reset"}});
    // Credentials as a Kubernetes Secret mount gives them: files with a trailing newline.
    key_file_ = dir_->path() + "/key";
    secret_file_ = dir_->path() + "/secret";
    WriteFile(key_file_, fixture_->Get("access_key_id") + "\n");
    WriteFile(secret_file_, fixture_->Get("secret_access_key") + "\n");
  }

  static void WriteFile(const std::string& path, const std::string& text) {
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(text.c_str(), f);
    std::fclose(f);
  }

  // A store through the proxy (or straight to moto), with small backoffs.
  StoreOptions Options(const std::string& url, bool direct = false) {
    StoreOptions options;
    options.url = url;
    options.endpoint = fixture_->Get(direct ? "endpoint" : "proxy");
    options.region = fixture_->Get("region");
    options.access_key_file = key_file_;
    options.secret_key_file = secret_file_;
    options.max_attempts = 3;
    options.first_backoff = 20ms;
    options.max_backoff = 100ms;
    options.connect_timeout = 1s;
    options.request_timeout = 10s;
    return options;
  }
  std::unique_ptr<ObjectStore> Open(const StoreOptions& options) {
    auto store = OpenStore(options);
    EXPECT_TRUE(store) << store.error().ToString();
    return store ? std::move(*store) : nullptr;
  }

  static testing::TempDir* dir_;
  static Fixture* fixture_;
  std::string key_file_;
  std::string secret_file_;
};

testing::TempDir* S3StoreTest::dir_ = nullptr;
Fixture* S3StoreTest::fixture_ = nullptr;

TEST_F(S3StoreTest, PutGetListDeleteWithPagination) {
  auto options = Options("s3://backups/cluster-a");
  options.list_page_size = 7;  // 25 keys: 4 pages, with continuation tokens
  auto store = Open(options);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->Describe(), "s3://backups/cluster-a at " + fixture_->Get("proxy"));
  for (int i = 0; i < 25; ++i) {
    char key[64];
    std::snprintf(key, sizeof key, "base/2026-11-25/chunk-%04d", i);
    ASSERT_TRUE(store->Put(key, Bytes(std::string(i, 'x'))).ok()) << key;
  }
  ASSERT_TRUE(store->Put("other/one", Bytes("1")).ok());
  auto listed = store->List("base/");
  ASSERT_TRUE(listed) << listed.error().ToString();
  ASSERT_EQ(listed->size(), 25u);
  for (int i = 0; i < 25; ++i) {
    char key[64];
    std::snprintf(key, sizeof key, "base/2026-11-25/chunk-%04d", i);
    EXPECT_EQ((*listed)[i].key, key);
    EXPECT_EQ((*listed)[i].size, static_cast<uint64_t>(i));
  }
  EXPECT_EQ(store->List("")->size(), 26u);
  EXPECT_TRUE(store->List("nothing/")->empty());
  // The prefix of the URL is where the keys are: another prefix sees none of them.
  auto other = Open(Options("s3://backups/cluster-b"));
  EXPECT_TRUE(other->List("")->empty());

  auto got = store->Get("base/2026-11-25/chunk-0024", 24);
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_EQ(*got, Bytes(std::string(24, 'x')));
  auto too_big = store->Get("base/2026-11-25/chunk-0024", 23);
  ASSERT_FALSE(too_big);
  EXPECT_EQ(too_big.error().code(), StatusCode::kCorruption) << too_big.error().ToString();

  ASSERT_TRUE(store->Delete("other/one").ok());
  EXPECT_TRUE(store->Delete("other/one").ok());  // absent: ok
  auto gone = store->Get("other/one", 10);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code(), StatusCode::kNotFound) << gone.error().ToString();
  for (const auto& o : *listed) ASSERT_TRUE(store->Delete(o.key).ok());
  EXPECT_TRUE(store->List("")->empty());
}

// The archive's listing, exactly: "backups/" under a store prefix and under none, on a store
// whose FIRST request is that list (a fresh curl handle, no connection yet). The query then
// has a '/' in a value (prefix=backups%2F, or cluster-a%2Fbackups%2F), which SigV4 signs
// encoded; the proxy checks the signature the way AWS does. (moto 5.2.1 alone refuses it: it
// signs the decoded value, see fault_proxy.py, so replboot must not be pointed at a bare moto.)
TEST_F(S3StoreTest, FirstRequestIsAListOfTheArchivesPrefix) {
  for (const std::string url : {"s3://backups", "s3://backups/cluster-a"}) {
    SCOPED_TRACE(url);
    const int before = fixture_->Requests();
    {
      auto fresh = Open(Options(url));
      ASSERT_TRUE(fresh);
      auto listed = fresh->List("backups/");
      ASSERT_TRUE(listed) << listed.error().ToString();
      EXPECT_TRUE(listed->empty());
    }
    EXPECT_EQ(fixture_->Requests(), before + 1);  // one list, signed right the first time
    {
      auto writer = Open(Options(url));
      ASSERT_TRUE(writer);
      ASSERT_TRUE(writer->Put("backups/20261207T082400Z-1/manifest", Bytes("m")).ok());
      ASSERT_TRUE(writer->Put("backupsx/not-listed", Bytes("x")).ok());
    }
    auto fresh = Open(Options(url));
    ASSERT_TRUE(fresh);
    auto listed = fresh->List("backups/");
    ASSERT_TRUE(listed) << listed.error().ToString();
    ASSERT_EQ(listed->size(), 1u);
    EXPECT_EQ((*listed)[0].key, "backups/20261207T082400Z-1/manifest");
    EXPECT_EQ((*listed)[0].size, 1u);
    ASSERT_TRUE(fresh->Delete("backups/20261207T082400Z-1/manifest").ok());
    ASSERT_TRUE(fresh->Delete("backupsx/not-listed").ok());
  }
}

TEST_F(S3StoreTest, BinaryBodyRoundTrips) {
  auto store = Open(Options("s3://backups"));
  std::vector<uint8_t> body(3 << 20);  // 3 MiB: curl sends Expect: 100-continue
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<uint8_t>(i * 7 + (i >> 11));
  ASSERT_TRUE(store->Put("blob", body).ok());
  auto got = store->Get("blob", body.size());
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_TRUE(*got == body);
  ASSERT_TRUE(store->Put("empty", {}).ok());
  EXPECT_TRUE(store->Get("empty", 0)->empty());
}

TEST_F(S3StoreTest, PutIfAbsentAndItsRace) {
  auto store = Open(Options("s3://backups"));
  auto first = store->PutIfAbsent("lock/owner", Bytes("me"));
  ASSERT_TRUE(first) << first.error().ToString();
  EXPECT_TRUE(*first);
  auto second = store->PutIfAbsent("lock/owner", Bytes("you"));
  ASSERT_TRUE(second) << second.error().ToString();
  EXPECT_FALSE(*second);
  EXPECT_EQ(*store->Get("lock/owner", 10), Bytes("me"));
  // moto 5.2.1 checks If-None-Match and then writes, without a lock (S3 itself is atomic):
  // the proxy lets one request at a time through, so this tests our side of the race (both
  // answers understood, from two threads on one store), not moto's.
  fixture_->Command({{"cmd", "serialize"}, {"on", true}});
  for (int round = 0; round < 5; ++round) {
    const std::string key = "race/" + std::to_string(round);
    std::atomic<int> winners = 0;
    std::atomic<int> errors = 0;
    std::thread a([&] {
      auto r = store->PutIfAbsent(key, Bytes("a"));
      r ? (*r ? ++winners : 0) : ++errors;
    });
    std::thread b([&] {
      auto r = store->PutIfAbsent(key, Bytes("b"));
      r ? (*r ? ++winners : 0) : ++errors;
    });
    a.join();
    b.join();
    EXPECT_EQ(winners.load(), 1) << key;
    EXPECT_EQ(errors.load(), 0) << key;
  }
}

TEST_F(S3StoreTest, WrongSecretIsPermissionDeniedAndNeverShown) {
  const std::string wrong = "wrongSecretValue1234567890";
  WriteFile(secret_file_, wrong + "\n");
  for (bool direct : {true, false}) {  // moto's own check, and the proxy's
    auto store = Open(Options("s3://backups", direct));
    const int before = fixture_->Requests();
    Status s = store->Put("x", Bytes("x"));
    EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.ToString();
    EXPECT_NE(s.message().find("SignatureDoesNotMatch"), std::string::npos) << s.message();
    EXPECT_EQ(s.message().find(wrong), std::string::npos);
    EXPECT_EQ(s.message().find(fixture_->Get("secret_access_key")), std::string::npos);
    if (!direct) {
      EXPECT_EQ(fixture_->Requests() - before, 1) << "a 403 is not retried";
    }
  }
}

TEST_F(S3StoreTest, UnknownKeyIdIsPermissionDenied) {
  WriteFile(key_file_, "AKIANOSUCHKEY0000000\n");
  auto store = Open(Options("s3://backups", /*direct=*/true));
  auto r = store->List("");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kPermissionDenied) << r.error().ToString();
  EXPECT_NE(r.error().message().find("InvalidAccessKeyId"), std::string::npos);
}

TEST_F(S3StoreTest, MissingBucketIsNotFoundNamingIt) {
  auto store = Open(Options("s3://no-such-bucket/x"));
  Status s = store->Put("k", Bytes("v"));
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find("bucket no-such-bucket does not exist at " + fixture_->Get("proxy")),
            std::string::npos)
      << s.message();
  auto listed = store->List("");
  ASSERT_FALSE(listed);
  EXPECT_EQ(listed.error().code(), StatusCode::kNotFound);
}

TEST_F(S3StoreTest, ServerErrorsAreRetriedThenSucceed) {
  auto store = Open(Options("s3://backups"));
  fixture_->Command({{"cmd", "fail"}, {"count", 2}, {"status", 500}, {"code", "InternalError"}});
  const int before = fixture_->Requests();
  ASSERT_TRUE(store->Put("retried", Bytes("body")).ok());
  EXPECT_EQ(fixture_->Requests() - before, 3);
  EXPECT_EQ(*store->Get("retried", 10), Bytes("body"));
  fixture_->Command({{"cmd", "fail"}, {"count", 1}, {"status", 503}, {"code", "SlowDown"}});
  EXPECT_EQ(store->List("retried")->size(), 1u);
}

TEST_F(S3StoreTest, PersistentServerErrorsGiveUpWithTheCauseAndCount) {
  auto store = Open(Options("s3://backups"));
  fixture_->Command({{"cmd", "fail"}, {"count", 3}, {"status", 503}, {"code", "SlowDown"}});
  const int before = fixture_->Requests();
  Status s = store->Put("never", Bytes("x"));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("gave up after 3 attempts"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("HTTP 503 SlowDown"), std::string::npos) << s.message();
  EXPECT_EQ(fixture_->Requests() - before, 3);
}

TEST_F(S3StoreTest, ForbiddenFromTheServiceIsNotRetried) {
  auto store = Open(Options("s3://backups"));
  fixture_->Command({{"cmd", "fail"}, {"count", 1}, {"status", 403}, {"code", "AccessDenied"}});
  const int before = fixture_->Requests();
  auto r = store->Get("anything", 10);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kPermissionDenied) << r.error().ToString();
  EXPECT_NE(r.error().message().find("AccessDenied"), std::string::npos);
  EXPECT_EQ(fixture_->Requests() - before, 1);
}

TEST_F(S3StoreTest, UploadCutMidBodyIsRetriedAndStoredWhole) {
  auto store = Open(Options("s3://backups"));
  std::vector<uint8_t> body(200'000, 0x5a);
  fixture_->Command({{"cmd", "cut_after"}, {"bytes", 50'000}, {"count", 1}});
  const int before = fixture_->Requests();
  Status s = store->Put("cut", body);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(fixture_->Requests() - before, 2);
  auto got = store->Get("cut", body.size());
  ASSERT_TRUE(got);
  EXPECT_TRUE(*got == body);
  // A put-if-absent cut mid-body is retried too, and still wins once.
  fixture_->Command({{"cmd", "cut_after"}, {"bytes", 1000}, {"count", 1}});
  auto won = store->PutIfAbsent("cut-once", body);
  ASSERT_TRUE(won) << won.error().ToString();
  EXPECT_TRUE(*won);
}

TEST_F(S3StoreTest, UnreachableLongerThanTheRetryBudgetIsUnavailable) {
  auto store = Open(Options("s3://backups"));
  fixture_->Command({{"cmd", "cut_all"}});
  const auto start = std::chrono::steady_clock::now();
  Status s = store->Put("offline", Bytes("x"));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  fixture_->Command({{"cmd", "restore"}});
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("gave up after 3 attempts"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("connect"), std::string::npos) << s.message();
  EXPECT_LT(elapsed, 5s);
  // Back: the same store works again.
  EXPECT_TRUE(store->Put("offline", Bytes("x")).ok());
}

TEST_F(S3StoreTest, SlowServiceIsTimeoutPerAttempt) {
  auto options = Options("s3://backups");
  options.request_timeout = 300ms;
  options.max_attempts = 2;
  auto store = Open(options);
  fixture_->Command({{"cmd", "delay"}, {"seconds", 1.0}});
  const auto start = std::chrono::steady_clock::now();
  auto r = store->Get("slow", 10);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  fixture_->Command({{"cmd", "delay"}, {"seconds", 0}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kTimeout) << r.error().ToString();
  EXPECT_NE(r.error().message().find("gave up after 2 attempts"), std::string::npos);
  EXPECT_LT(elapsed, 2s);
}

TEST_F(S3StoreTest, StopTokenEndsRetriesWithCancelled) {
  std::stop_source stop;
  auto options = Options("s3://backups");
  options.max_attempts = 10;
  options.first_backoff = 5s;
  options.max_backoff = 5s;
  options.stop = stop.get_token();
  auto store = Open(options);
  fixture_->Command({{"cmd", "cut_all"}});
  std::thread stopper([&] {
    std::this_thread::sleep_for(300ms);
    stop.request_stop();
  });
  const auto start = std::chrono::steady_clock::now();
  Status s = store->Put("stopped", Bytes("x"));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  stopper.join();
  fixture_->Command({{"cmd", "restore"}});
  EXPECT_EQ(s.code(), StatusCode::kCancelled) << s.ToString();
  EXPECT_LT(elapsed, 3s);
}

TEST_F(S3StoreTest, StopTokenEndsATransferInFlight) {
  std::stop_source stop;
  auto options = Options("s3://backups");
  options.stop = stop.get_token();
  auto store = Open(options);
  fixture_->Command({{"cmd", "delay"}, {"seconds", 5.0}});
  std::thread stopper([&] {
    std::this_thread::sleep_for(300ms);
    stop.request_stop();
  });
  const auto start = std::chrono::steady_clock::now();
  auto r = store->Get("whatever", 10);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  stopper.join();
  fixture_->Command({{"cmd", "delay"}, {"seconds", 0}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kCancelled) << r.error().ToString();
  EXPECT_LT(elapsed, 3s);
}

}  // namespace
}  // namespace replboot::store
