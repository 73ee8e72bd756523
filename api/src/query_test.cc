#include "replboot/api/query.h"

#include <gtest/gtest.h>

#include <cmath>

namespace replboot::api {
namespace {

TEST(QueryTest, SplitsAndDecodes) {
  Query q = ParseQuery("gtid=0-1-2%2C1-1-5&timeout=1.5&flag&x=a+b&x=last&bad=%zz%4");
  EXPECT_EQ(q["gtid"], "0-1-2,1-1-5");
  EXPECT_EQ(q["timeout"], "1.5");
  EXPECT_EQ(q.count("flag"), 1u);
  EXPECT_EQ(q["flag"], "");
  EXPECT_EQ(q["x"], "last");
  EXPECT_EQ(q["bad"], "%zz%4");  // not an escape: kept as it is
  EXPECT_TRUE(ParseQuery("").empty());
}

TEST(QueryTest, NumbersInRange) {
  EXPECT_EQ(ParseNumberParam("timeout", "0", 0, 60).value(), 0);
  EXPECT_EQ(ParseNumberParam("timeout", "60", 0, 60).value(), 60);
  EXPECT_EQ(ParseNumberParam("timeout", "0.25", 0, 60).value(), 0.25);
  EXPECT_EQ(ParseNumberParam("timeout", "1e1", 0, 60).value(), 10);
  auto zero = ParseNumberParam("lag", "-0", 0, 60);
  ASSERT_TRUE(zero.has_value());
  EXPECT_FALSE(std::signbit(*zero));
}

TEST(QueryTest, RefusesWhatIsNotAFiniteNumberInRangeNamingTheParameter) {
  // The values that used to reach an undefined float-to-integer cast, and the usual garbage.
  for (const char* text : {"inf", "-inf", "infinity", "nan", "NaN", "-1", "1e300", "1e999", "61",
                           "60.0001", "", " 1", "1 ", "1s", "0x10", "+1", "1,5", "--1", "\x01"}) {
    auto r = ParseNumberParam("timeout", text, 0, 60);
    ASSERT_FALSE(r.has_value()) << "'" << text << "' was accepted as " << *r;
    EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.error().message().rfind("timeout '", 0), 0u) << r.error().message();
  }
  EXPECT_EQ(ParseNumberParam("lag", "1e300", 0, 86400).error().message(),
            "lag '1e300' is out of range [0, 86400]");
  EXPECT_EQ(ParseNumberParam("lag", "nan", 0, 86400).error().message(),
            "lag 'nan' is not a finite number");
}

}  // namespace
}  // namespace replboot::api
