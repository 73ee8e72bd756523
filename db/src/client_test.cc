#include "replboot/db/client.h"

#include <gtest/gtest.h>

namespace replboot::db {
namespace {

TEST(RowTest, GetsByColumnNameAndNullIsNullopt) {
  auto cols =
      std::make_shared<const std::vector<std::string>>(std::vector<std::string>{"a", "b", "c"});
  Row row(cols, {std::string("1"), std::nullopt, std::string("")});
  EXPECT_EQ(row.Get("a"), "1");
  EXPECT_EQ(row.Get("b"), std::nullopt);
  EXPECT_TRUE(row.Has("b"));
  EXPECT_EQ(row.Get("c"), "");
  EXPECT_EQ(row.Get("missing"), std::nullopt);
  EXPECT_FALSE(row.Has("missing"));
  EXPECT_EQ(row.size(), 3u);
  EXPECT_EQ(row.at(0), "1");
}

TEST(RowTest, DefaultRowHasNoColumns) {
  Row row;
  EXPECT_FALSE(row.Has("a"));
  EXPECT_EQ(row.Get("a"), std::nullopt);
}

TEST(QuoteIdentifierTest, DoublesBackticks) {
  EXPECT_EQ(QuoteIdentifier("app"), "`app`");
  EXPECT_EQ(QuoteIdentifier("a`b"), "`a``b`");
  EXPECT_EQ(QuoteIdentifier("my_app"), "`my_app`");
}

TEST(QuoteLiteralTest, EscapesQuotesBackslashesAndControlBytes) {
  EXPECT_EQ(QuoteLiteral("plain"), "'plain'");
  EXPECT_EQ(QuoteLiteral("it's"), "'it\\'s'");
  EXPECT_EQ(QuoteLiteral("a\\b"), "'a\\\\b'");
  EXPECT_EQ(QuoteLiteral(std::string("x\0y", 3)), "'x\\0y'");
  EXPECT_EQ(QuoteLiteral("l1\nl2\r"), "'l1\\nl2\\r'");
  EXPECT_EQ(QuoteLiteral(""), "''");
}

TEST(ConnectTest, MissingSocketIsUnavailableAndNamesThePath) {
  ConnectOptions options;
  options.socket = "/nonexistent/replboot-test.sock";
  options.user = "root";
  options.connect_timeout = std::chrono::seconds(1);
  auto session = Connect(options);
  ASSERT_FALSE(session.has_value());
  EXPECT_EQ(session.error().code(), StatusCode::kUnavailable);
  EXPECT_NE(session.error().message().find("/nonexistent/replboot-test.sock"), std::string::npos)
      << session.error().message();
}

TEST(ConnectTest, RefusedTcpPortIsUnavailable) {
  ConnectOptions options;
  options.host = "127.0.0.1";
  options.port = 1;  // nothing listens on tcpmux
  options.user = "root";
  options.connect_timeout = std::chrono::seconds(1);
  auto session = Connect(options);
  ASSERT_FALSE(session.has_value());
  EXPECT_EQ(session.error().code(), StatusCode::kUnavailable);
  EXPECT_NE(session.error().message().find("127.0.0.1:1"), std::string::npos)
      << session.error().message();
}

TEST(ConnectTest, NoSocketNoHostIsInvalid) {
  ConnectOptions options;
  auto session = Connect(options);
  ASSERT_FALSE(session.has_value());
  EXPECT_EQ(session.error().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace replboot::db
