#include "replboot/base/log.h"

#include <gtest/gtest.h>

namespace replboot::log {
namespace {

TEST(LogTest, SimpleTokensStayBareOthersAreQuoted) {
  EXPECT_EQ(Quote("mysql-1"), "mysql-1");
  EXPECT_EQ(Quote(""), "\"\"");
  EXPECT_EQ(Quote("a b"), "\"a b\"");
  EXPECT_EQ(Quote("k=v"), "\"k=v\"");
  EXPECT_EQ(Quote("say \"hi\"\nnow\\"), "\"say \\\"hi\\\"\\nnow\\\\\"");
}

TEST(LogTest, DoubleQuotedAlwaysQuotes) {
  EXPECT_EQ(DoubleQuoted("plain"), "\"plain\"");
  EXPECT_EQ(DoubleQuoted("a\"b"), "\"a\\\"b\"");
}

}  // namespace
}  // namespace replboot::log
