#include "replboot/base/flavour.h"

#include <gtest/gtest.h>

namespace replboot {
namespace {

TEST(FlavourTest, NamesParseBack) {
  for (Flavour f : {Flavour::kMariaDB, Flavour::kMySQL}) {
    auto parsed = ParseFlavour(FlavourName(f));
    ASSERT_TRUE(parsed.has_value()) << FlavourName(f);
    EXPECT_EQ(*parsed, f);
  }
  EXPECT_EQ(FlavourName(Flavour::kMariaDB), "mariadb");
  EXPECT_EQ(FlavourName(Flavour::kMySQL), "mysql");
}

TEST(FlavourTest, UnknownNamesAreRefusedNamingTheText) {
  for (std::string_view bad : {"", "auto", "MariaDB", "mysql8", "percona"}) {
    auto parsed = ParseFlavour(bad);
    ASSERT_FALSE(parsed.has_value()) << bad;
    EXPECT_EQ(parsed.error().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.error().message().find(fmt::format("'{}'", bad)), std::string::npos)
        << parsed.error().message();
  }
}

}  // namespace
}  // namespace replboot
