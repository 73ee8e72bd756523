#include "replboot/base/log.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

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

TEST(LogTest, PrintableEscapesEveryByteThatIsNotPrintableAscii) {
  EXPECT_EQ(Printable("zstd:9"), "\"zstd:9\"");
  EXPECT_EQ(Printable("a\"b\\c\n\r\t"), "\"a\\\"b\\\\c\\n\\r\\t\"");
  // Invalid UTF-8 (a lone lead byte, 0xff), a NUL and DEL: each one \xNN, never passed through.
  EXPECT_EQ(Printable(std::string_view("ma\xe3ri\xff\0\x7f", 8)), "\"ma\\xe3ri\\xff\\x00\\x7f\"");
}

TEST(LogTest, ParseLogfmtReadsWhatQuoteWrote) {
  using Fields = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(ParseLogfmt("event=clone_done peer=10.0.0.1:3307 bytes=42"),
            (Fields{{"event", "clone_done"}, {"peer", "10.0.0.1:3307"}, {"bytes", "42"}}));
  std::string odd = "say \"hi\"\nnow\\ k=v";
  EXPECT_EQ(ParseLogfmt("event=x error=" + Quote(odd) + " empty=" + Quote("")),
            (Fields{{"event", "x"}, {"error", odd}, {"empty", ""}}));
  // Words that are no key=value pair are kept, in order, under "msg".
  EXPECT_EQ(ParseLogfmt("starting  now event=boot =x"),
            (Fields{{"event", "boot"}, {"msg", "starting now =x"}}));
  EXPECT_EQ(ParseLogfmt(""), Fields{});
}

TEST(LogTest, JsonFormatWritesOneObjectPerLineWithTheSameFields) {
  ASSERT_FALSE(SetFormat("xml"));
  ASSERT_TRUE(SetFormat("json"));
  testing::internal::CaptureStdout();
  Get("logtest")->info("event=mysqld_started pid=42 error={}", Quote("no \"socket\"\nyet"));
  Get("logtest")->warn("level=spoofed event=second");
  std::string out = testing::internal::GetCapturedStdout();
  ASSERT_TRUE(SetFormat("logfmt"));

  std::istringstream lines(out);
  std::string line;
  std::vector<nlohmann::json> docs;
  while (std::getline(lines, line)) docs.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(docs.size(), 2u) << out;
  EXPECT_EQ(docs[0]["level"], "info");
  EXPECT_EQ(docs[0]["component"], "logtest");
  EXPECT_EQ(docs[0]["event"], "mysqld_started");
  EXPECT_EQ(docs[0]["pid"], "42");
  EXPECT_EQ(docs[0]["error"], "no \"socket\"\nyet");
  EXPECT_EQ(docs[0].size(), 6u) << docs[0];  // time, level, component, event, pid, error
  std::string time = docs[0]["time"];
  EXPECT_EQ(time.size(), 24u) << time;  // 2026-11-25T13:05:01.123Z
  EXPECT_EQ(time.back(), 'Z') << time;
  // A message cannot replace the line's own fields.
  EXPECT_EQ(docs[1]["level"], "warning");
  EXPECT_EQ(docs[1]["event"], "second");

  // Back to logfmt: the same call gives the classic line.
  testing::internal::CaptureStdout();
  Get("logtest")->info("event=back");
  out = testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find(" level=info component=logtest event=back\n"), std::string::npos) << out;
}

}  // namespace
}  // namespace replboot::log
