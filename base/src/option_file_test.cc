#include "replboot/base/option_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "replboot/base/files.h"
#include "replboot/base/process.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::option_file {
namespace {

TEST(OptionFileTest, QuotesAndEscapesWhatTheParserWouldChange) {
  EXPECT_EQ(*QuoteValue("plain-1.5/x:y,z+w@h_"), "plain-1.5/x:y,z+w@h_");
  EXPECT_EQ(*QuoteValue("two words"), "\"two words\"");
  EXPECT_EQ(*QuoteValue("p#1"), "\"p#1\"");
  EXPECT_EQ(*QuoteValue(" lead"), "\" lead\"");
  EXPECT_EQ(*QuoteValue("a\\b\"c'd"), "\"a\\\\b\\\"c'd\"");
  EXPECT_EQ(*QuoteValue("\t\n\r\b"), "\"\\t\\n\\r\\b\"");
  EXPECT_EQ(*QuoteValue(""), "\"\"");
  EXPECT_EQ(*QuoteValue("h\xc3\xa9"), "\"h\xc3\xa9\"");
}

TEST(OptionFileTest, RefusesNulAndOverlongLinesNamingTheOptionNotTheValue) {
  auto nul = Line("password", std::string("a\0b", 3));
  ASSERT_FALSE(nul);
  EXPECT_EQ(nul.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(nul.error().message().find("password"), std::string::npos);
  EXPECT_NE(nul.error().message().find("NUL"), std::string::npos);

  auto ok = Line("password", std::string(kMaxLineBytes - 11, 'x'));  // password="..." fits
  ASSERT_TRUE(ok) << ok.error().message();
  auto longer = Line("password", std::string(kMaxLineBytes, 's'));
  ASSERT_FALSE(longer);
  EXPECT_NE(longer.error().message().find("too long"), std::string::npos);
  EXPECT_EQ(longer.error().message().find("sss"), std::string::npos);
}

// The real parser is the judge: my_print_defaults prints what mysqld and mariabackup read.
TEST(OptionFileTest, TheServersOptionParserReadsBackEveryValue) {
  const char* tool = "/usr/bin/my_print_defaults";
  if (::access(tool, X_OK) != 0) GTEST_SKIP() << tool << " is not installed";
  const std::string values[] = {
      "p#1",    " lead and trail ", "q'uo\"te",   "back\\slash\\", "\\n\\s\\x",
      "plain",  "#",      "\"",               "'",          "\\",            "tab\there\rcr\nnl\bbs",
      "h\xc3\xa9llo \xe2\x82\xac", "x\x01y\x7f", "a # b ; c",    "=eq=",
  };
  replboot::testing::TempDir tmp("option-file-test");
  std::string cnf = "[client]\n";
  for (const std::string& v : values) cnf += *Line("password", v);
  std::string path = tmp.Path("t.cnf");
  ASSERT_TRUE(files::WriteFileAtomic(path, cnf, 0600).ok());
  auto out = process::RunCapture({tool, "--defaults-file=" + path, "client"},
                                 process::ChildEnvironment());
  ASSERT_TRUE(out) << out.error().message();
  std::string expected;
  for (const std::string& v : values) expected += "--password=" + v + "\n";
  EXPECT_EQ(out->out, expected);
}

}  // namespace
}  // namespace replboot::option_file
