// S3Store against a tiny scripted HTTP server on loopback: what a hostile or broken service
// can send (sizes, pages, redirects, garbage), and what we send (headers, signing inputs).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>

#include "replboot/store/object_store.h"
#include "s3_request.h"

namespace replboot::store {
namespace {

using namespace std::chrono_literals;

struct SeenRequest {
  std::string head;  // request line and headers
  std::string body;
};

// Accepts connections on 127.0.0.1, reads one request per connection and writes what the
// handler returns, then closes. The handler may also sleep (a slow body).
class ScriptedServer {
 public:
  using Handler = std::function<std::string(const SeenRequest&, int fd)>;
  explicit ScriptedServer(Handler handler) : handler_(std::move(handler)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string Endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<SeenRequest> Seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  void Loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      SeenRequest req;
      std::string buf;
      char tmp[65536];
      size_t end = std::string::npos;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
        if (n <= 0) break;
        buf.append(tmp, static_cast<size_t>(n));
      }
      if (end == std::string::npos) {
        ::close(c);
        continue;
      }
      req.head = buf.substr(0, end);
      size_t length = 0;
      for (const char* name : {"Content-Length: ", "content-length: "}) {
        size_t at = req.head.find(name);
        if (at != std::string::npos) length = std::stoul(req.head.substr(at + std::strlen(name)));
      }
      if (req.head.find("Expect: 100-continue") != std::string::npos) {
        ::send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25, MSG_NOSIGNAL);
      }
      req.body = buf.substr(end + 4);
      while (req.body.size() < length) {
        ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
        if (n <= 0) break;
        req.body.append(tmp, static_cast<size_t>(n));
      }
      {
        std::lock_guard lock(mu_);
        seen_.push_back(req);
      }
      std::string answer = handler_(req, c);
      ::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      ::shutdown(c, SHUT_RDWR);
      ::close(c);
    }
  }

  Handler handler_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_ = false;
  std::thread thread_;
  std::mutex mu_;
  std::vector<SeenRequest> seen_;
};

std::string Answer(int status, const std::string& body, const std::string& extra = "") {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + extra + "Connection: close\r\n\r\n" + body;
}

std::unique_ptr<ObjectStore> Open(const std::string& endpoint, const std::string& url = "s3://bkt/pre",
                                  int attempts = 2) {
  ::setenv("AWS_ACCESS_KEY_ID", "AKIDUNITTEST", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "unit-secret-value", 1);
  ::setenv("AWS_SESSION_TOKEN", "unit-session-token", 1);
  StoreOptions options;
  options.url = url;
  options.endpoint = endpoint;
  options.max_attempts = attempts;
  options.first_backoff = 1ms;
  options.max_backoff = 2ms;
  options.request_timeout = 5s;
  auto store = OpenStore(options);
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  ::unsetenv("AWS_SESSION_TOKEN");
  EXPECT_TRUE(store) << store.error().ToString();
  return store ? std::move(*store) : nullptr;
}

std::vector<uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

TEST(S3StoreTest, PutSendsTheSignedHashOfTheBodyAndTheToken) {
  ScriptedServer server([](const SeenRequest&, int) { return Answer(200, ""); });
  auto store = Open(server.Endpoint());
  ASSERT_TRUE(store->Put("a/b", Bytes("abc")).ok());
  auto seen = server.Seen();
  ASSERT_EQ(seen.size(), 1u);
  const std::string& head = seen[0].head;
  EXPECT_TRUE(head.starts_with("PUT /bkt/pre/a/b HTTP/1.1\r\n")) << head;
  EXPECT_EQ(seen[0].body, "abc");
  EXPECT_NE(head.find("x-amz-content-sha256: "
                      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            std::string::npos)
      << head;
  EXPECT_NE(head.find("x-amz-security-token: unit-session-token"), std::string::npos);
  EXPECT_NE(head.find("Content-Type: application/octet-stream"), std::string::npos);
  EXPECT_NE(head.find("Authorization: AWS4-HMAC-SHA256 Credential=AKIDUNITTEST/"), std::string::npos);
  EXPECT_NE(head.find("/us-east-1/s3/aws4_request"), std::string::npos);
  // Every header we set is signed, the hash and the token included.
  EXPECT_NE(head.find("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;"
                      "x-amz-security-token"),
            std::string::npos)
      << head;
  EXPECT_EQ(head.find("unit-secret-value"), std::string::npos);
  EXPECT_EQ(store->Describe().find("unit"), std::string::npos);
}

TEST(S3StoreTest, PutIfAbsentSendsIfNoneMatchAndReads412AsFalse) {
  ScriptedServer server([](const SeenRequest&, int) {
    return Answer(412, "<Error><Code>PreconditionFailed</Code></Error>");
  });
  auto store = Open(server.Endpoint());
  auto r = store->PutIfAbsent("lock", Bytes("me"));
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_FALSE(*r);
  ASSERT_EQ(server.Seen().size(), 1u);
  EXPECT_NE(server.Seen()[0].head.find("If-None-Match: *"), std::string::npos);
}

TEST(S3StoreTest, GetRefusesADeclaredLengthOverMaxBeforeReadingIt) {
  // Announces 1 GiB and sends nothing more: the store must not wait for it, nor hold it.
  ScriptedServer server([](const SeenRequest&, int) {
    return std::string("HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\nxx");
  });
  auto store = Open(server.Endpoint());
  const auto start = std::chrono::steady_clock::now();
  auto r = store->Get("big", 1000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kCorruption) << r.error().ToString();
  EXPECT_NE(r.error().message().find("1073741824 bytes, over the 1000 allowed"), std::string::npos)
      << r.error().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(server.Seen().size(), 1u);  // not retried
}

TEST(S3StoreTest, GetStopsABodyThatGrowsPastMax) {
  ScriptedServer server([](const SeenRequest&, int) {
    return std::string("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n") + std::string(5000, 'z');
  });
  auto store = Open(server.Endpoint());
  auto r = store->Get("grows", 4096);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kCorruption) << r.error().ToString();
  auto ok = store->Get("grows", 5000);
  ASSERT_TRUE(ok) << ok.error().ToString();
  EXPECT_EQ(ok->size(), 5000u);
}

TEST(S3StoreTest, RedirectsAreNotFollowed) {
  ScriptedServer server([](const SeenRequest&, int) {
    return Answer(301, "<Error><Code>PermanentRedirect</Code></Error>",
                  "Location: http://169.254.169.254/latest/meta-data\r\n");
  });
  auto store = Open(server.Endpoint());
  auto r = store->Get("k", 100);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kIOError);
  EXPECT_NE(r.error().message().find("HTTP 301 PermanentRedirect"), std::string::npos);
  EXPECT_EQ(server.Seen().size(), 1u);
}

TEST(S3StoreTest, GarbageErrorBodyStillMapsByStatusAndIsRetried) {
  ScriptedServer server([](const SeenRequest&, int) {
    return Answer(502, "<html>\x01\x02 bad gateway</html>");
  });
  auto store = Open(server.Endpoint(), "s3://bkt", 3);
  Status s = store->Delete("k");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("gave up after 3 attempts, last: HTTP 502"), std::string::npos)
      << s.message();
  EXPECT_EQ(server.Seen().size(), 3u);
  EXPECT_TRUE(server.Seen()[0].head.starts_with("DELETE /bkt/k "));
}

std::string ListXml(const std::vector<std::string>& keys, const std::string& token) {
  std::string xml = "<ListBucketResult>";
  for (const auto& k : keys) xml += "<Contents><Key>" + k + "</Key><Size>1</Size></Contents>";
  xml += token.empty() ? "<IsTruncated>false</IsTruncated>"
                       : "<IsTruncated>true</IsTruncated><NextContinuationToken>" + token +
                             "</NextContinuationToken>";
  return xml + "</ListBucketResult>";
}

TEST(S3StoreTest, ListFollowsTokensAndStripsThePrefix) {
  std::atomic<int> page = 0;
  ScriptedServer server([&](const SeenRequest&, int) {
    switch (page++) {
      case 0: return Answer(200, ListXml({"pre/a", "pre/b"}, "t/1="));
      case 1: return Answer(200, ListXml({"pre/c"}, ""));
      default: return Answer(500, "");
    }
  });
  auto store = Open(server.Endpoint());
  auto r = store->List("");
  ASSERT_TRUE(r) << r.error().ToString();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].key, "a");
  EXPECT_EQ((*r)[2].key, "c");
  auto seen = server.Seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen[0].head.starts_with("GET /bkt?list-type=2&max-keys=1000&prefix=pre%2F HTTP"))
      << seen[0].head;
  EXPECT_TRUE(seen[1].head.starts_with(
      "GET /bkt?continuation-token=t%2F1%3D&list-type=2&max-keys=1000&prefix=pre%2F HTTP"))
      << seen[1].head;
}

TEST(S3StoreTest, ListRefusesHostilePages) {
  struct Case {
    std::vector<std::string> pages;
    const char* why;
  };
  const Case cases[] = {
      {{ListXml({"pre/b", "pre/a"}, "")}, "out of order"},
      {{ListXml({"other/a"}, "")}, "outside the prefix"},
      {{ListXml({"pre/a"}, "same"), ListXml({"pre/b"}, "same")}, "without progress"},
      {{ListXml({"pre/a"}, "t1"), ListXml({"pre/a"}, "")}, "out of order"},  // a repeat
      {{"<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>"}, "true or false"},
  };
  for (const auto& c : cases) {
    std::atomic<size_t> i = 0;
    ScriptedServer server([&](const SeenRequest&, int) {
      size_t n = i++;
      return Answer(200, n < c.pages.size() ? c.pages[n] : ListXml({}, ""));
    });
    auto store = Open(server.Endpoint());
    auto r = store->List("");
    ASSERT_FALSE(r) << c.why;
    EXPECT_EQ(r.error().code(), StatusCode::kCorruption) << r.error().ToString();
    EXPECT_NE(r.error().message().find(c.why), std::string::npos) << r.error().message();
  }
}

TEST(S3StoreTest, KeysAreCheckedBeforeAnyRequest) {
  ScriptedServer server([](const SeenRequest&, int) { return Answer(200, ""); });
  auto store = Open(server.Endpoint());
  EXPECT_EQ(store->Put("../x", Bytes("")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Get("/x", 1).error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Delete("a//b").code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(server.Seen().empty());
}

TEST(S3StoreOpenTest, NeedsCredentialsAndSaneOptions) {
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  StoreOptions options;
  options.url = "s3://bkt";
  options.endpoint = "http://127.0.0.1:1";
  auto r = OpenStore(options);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("AWS_ACCESS_KEY_ID"), std::string::npos);
  options.access_key_file = "/nonexistent/id";
  options.secret_key_file = "/nonexistent/secret";
  EXPECT_EQ(OpenStore(options).error().code(), StatusCode::kNotFound);
  ::setenv("AWS_ACCESS_KEY_ID", "a", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "b", 1);
  options.access_key_file = options.secret_key_file = "";
  options.list_page_size = 0;
  EXPECT_FALSE(OpenStore(options));
  options.list_page_size = 1000;
  options.max_attempts = 0;
  EXPECT_FALSE(OpenStore(options));
  options.max_attempts = 3;
  options.ca_file = "/nonexistent/ca.pem";
  EXPECT_FALSE(OpenStore(options));
  options.ca_file = "";
  EXPECT_TRUE(OpenStore(options));
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
}

}  // namespace
}  // namespace replboot::store
