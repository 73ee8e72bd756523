#include "s3_request.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "replboot/testing/temp_dir.h"

namespace replboot::store::s3 {
namespace {

TEST(S3UrlTest, BucketAndPrefix) {
  auto u = ParseS3Url("s3://my-bucket.1/backups/cluster-a/");
  ASSERT_TRUE(u) << u.error().ToString();
  EXPECT_EQ(u->bucket, "my-bucket.1");
  EXPECT_EQ(u->prefix, "backups/cluster-a/");
  EXPECT_EQ(ParseS3Url("s3://bkt")->prefix, "");
  EXPECT_EQ(ParseS3Url("s3://bkt/")->prefix, "");
}

TEST(S3UrlTest, RefusesBadBucketsAndPrefixes) {
  for (const char* url : {"s3://", "s3://ab", "s3://-abc", "s3://abc-", "s3://a..b", "s3://ABC",
                          "s3://a_b_c", "s3://10.0.0.1", "s3://bkt/../x", "s3://bkt/a//b",
                          "s3://bkt/./x", "http://bkt"}) {
    auto u = ParseS3Url(url);
    EXPECT_FALSE(u) << url;
    if (!u) {
      EXPECT_EQ(u.error().code(), StatusCode::kInvalidArgument);
    }
  }
  EXPECT_FALSE(ValidBucketName(std::string(64, 'a')));
  EXPECT_TRUE(ValidBucketName(std::string(63, 'a')));
}

TEST(EndpointTest, ParsesAndRefuses) {
  auto e = ParseEndpoint("http://127.0.0.1:5000/");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->scheme, "http");
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, "5000");
  EXPECT_EQ(e->ToString(), "http://127.0.0.1:5000");
  auto v6 = ParseEndpoint("https://[::1]:9000");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "[::1]");
  EXPECT_EQ(v6->port, "9000");
  EXPECT_EQ(ParseEndpoint("https://minio.local")->port, "");
  for (const char* bad : {"ftp://x", "http://", "http://user:pw@host", "http://host/path",
                          "http://host?q", "http://host:0", "http://host:65536", "http://host:x",
                          "http://ho st", "http://host:+80", "http://[::1", "file:///x"}) {
    auto r = ParseEndpoint(bad);
    EXPECT_FALSE(r) << bad;
  }
  // The user part never shows up in the error (it might hold a password).
  auto r = ParseEndpoint("http://user:hunter2@host");
  ASSERT_FALSE(r);
}

TEST(UriEncodeTest, SigV4Rules) {
  EXPECT_EQ(UriEncode("AZaz09-._~", false), "AZaz09-._~");
  EXPECT_EQ(UriEncode("a/b c+d=e&f", false), "a%2Fb%20c%2Bd%3De%26f");
  EXPECT_EQ(UriEncode("a/b c", true), "a/b%20c");
  EXPECT_EQ(UriEncode("\xc3\xa9*", true), "%C3%A9%2A");  // upper-case hex, bytes of UTF-8
}

TEST(TargetTest, PathStyleUrlsAreCanonical) {
  StoreOptions options;
  options.url = "s3://bkt/pre";
  options.endpoint = "http://127.0.0.1:5000";
  auto t = MakeTarget(options);
  ASSERT_TRUE(t) << t.error().ToString();
  EXPECT_TRUE(t->path_style);
  EXPECT_EQ(t->Url("a/b c"), "http://127.0.0.1:5000/bkt/pre/a/b%20c");
  // The query sorted by name, names and values encoded ('/' too): what curl signs as is.
  EXPECT_EQ(t->Url("", {{"prefix", "pre/x/"}, {"list-type", "2"}, {"continuation-token", "a+b/="}}),
            "http://127.0.0.1:5000/bkt?continuation-token=a%2Bb%2F%3D&list-type=2&prefix=pre%2Fx%2F");
  EXPECT_EQ(t->Describe(), "s3://bkt/pre at http://127.0.0.1:5000");
}

TEST(TargetTest, AwsDefaultsToVirtualHost) {
  StoreOptions options;
  options.url = "s3://bkt";
  options.region = "eu-west-1";
  auto t = MakeTarget(options);
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->path_style);
  EXPECT_EQ(t->Url("k"), "https://bkt.s3.eu-west-1.amazonaws.com/k");
  EXPECT_EQ(t->Url("", {{"list-type", "2"}}), "https://bkt.s3.eu-west-1.amazonaws.com/?list-type=2");
  EXPECT_EQ(t->Describe(), "s3://bkt at https://s3.eu-west-1.amazonaws.com");
  options.addressing = StoreOptions::Addressing::kPath;
  EXPECT_EQ(MakeTarget(options)->Url("k"), "https://s3.eu-west-1.amazonaws.com/bkt/k");
}

TEST(TargetTest, RefusesWhatCannotWork) {
  StoreOptions options;
  options.url = "s3://bkt";
  options.region = "us-east-1\r\nX: y";
  EXPECT_FALSE(MakeTarget(options));
  options.region = "us-east-1";
  options.endpoint = "http://127.0.0.1:5000";
  options.addressing = StoreOptions::Addressing::kVirtualHost;
  EXPECT_FALSE(MakeTarget(options));  // an address has no subdomains
  options.url = "s3://my.bucket";
  options.endpoint = "https://s3.example.com";
  EXPECT_FALSE(MakeTarget(options));  // the wildcard certificate would not cover it
  options.endpoint = "http://s3.example.com";
  EXPECT_TRUE(MakeTarget(options));
}

std::map<std::string, std::string> fake_env;
const char* FakeEnv(const char* name) {
  auto it = fake_env.find(name);
  return it == fake_env.end() ? nullptr : it->second.c_str();
}

TEST(CredentialsTest, FromFilesWithATrailingNewline) {
  testing::TempDir dir("s3-creds");
  std::ofstream(dir.path() + "/id") << "AKIDEXAMPLE\n";
  std::ofstream(dir.path() + "/secret") << "wJalr/secret+key\r\n";
  std::ofstream(dir.path() + "/token") << "tok";
  StoreOptions options;
  options.access_key_file = dir.path() + "/id";
  options.secret_key_file = dir.path() + "/secret";
  options.session_token_file = dir.path() + "/token";
  auto c = LoadCredentials(options, &FakeEnv);
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(c->access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(c->secret_access_key, "wJalr/secret+key");
  EXPECT_EQ(c->session_token, "tok");
}

TEST(CredentialsTest, ControlCharactersAreRefusedWithoutShowingTheValue) {
  testing::TempDir dir("s3-creds-bad");
  std::ofstream(dir.path() + "/id") << "AKID";
  std::ofstream(dir.path() + "/secret") << "top\nsecretvalue\n";
  StoreOptions options;
  options.access_key_file = dir.path() + "/id";
  options.secret_key_file = dir.path() + "/secret";
  auto c = LoadCredentials(options, &FakeEnv);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.error().message().find(dir.path() + "/secret"), std::string::npos);
  EXPECT_EQ(c.error().message().find("secretvalue"), std::string::npos);
  options.secret_key_file = dir.path() + "/missing";
  EXPECT_EQ(LoadCredentials(options, &FakeEnv).error().code(), StatusCode::kNotFound);
  options.secret_key_file = "";
  EXPECT_FALSE(LoadCredentials(options, &FakeEnv));
}

TEST(CredentialsTest, FromTheEnvironment) {
  fake_env = {{"AWS_ACCESS_KEY_ID", "AKIDENV"}, {"AWS_SECRET_ACCESS_KEY", "envsecret"}};
  auto c = LoadCredentials(StoreOptions{}, &FakeEnv);
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(c->access_key_id, "AKIDENV");
  EXPECT_EQ(c->secret_access_key, "envsecret");
  EXPECT_EQ(c->session_token, "");
  fake_env["AWS_SESSION_TOKEN"] = "sess";
  EXPECT_EQ(LoadCredentials(StoreOptions{}, &FakeEnv)->session_token, "sess");
  fake_env["AWS_SESSION_TOKEN"] = "a\rb";
  EXPECT_FALSE(LoadCredentials(StoreOptions{}, &FakeEnv));
  fake_env.erase("AWS_SESSION_TOKEN");
  fake_env.erase("AWS_SECRET_ACCESS_KEY");
  auto missing = LoadCredentials(StoreOptions{}, &FakeEnv);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("AWS_SECRET_ACCESS_KEY is missing"), std::string::npos);
  fake_env.clear();
}

TEST(Sha256Test, KnownValues) {
  EXPECT_EQ(Sha256Hex({}), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string abc = "abc";
  EXPECT_EQ(Sha256Hex(std::span(reinterpret_cast<const uint8_t*>(abc.data()), abc.size())),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ParseUint64Test, Strict) {
  uint64_t v = 0;
  EXPECT_TRUE(ParseUint64("0", &v));
  EXPECT_TRUE(ParseUint64("18446744073709551615", &v));
  EXPECT_EQ(v, UINT64_MAX);
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "1e3", "0x10", "18446744073709551616",
                          "000000000000000000001"}) {
    EXPECT_FALSE(ParseUint64(bad, &v)) << bad;
  }
}

}  // namespace
}  // namespace replboot::store::s3
