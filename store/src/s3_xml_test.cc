#include "s3_xml.h"

#include <gtest/gtest.h>

namespace replboot::store::s3 {
namespace {

std::string Page(const std::string& contents, const std::string& tail =
                 "<IsTruncated>false</IsTruncated>") {
  return R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>)" +
         contents + tail + "</ListBucketResult>";
}
std::string Item(const std::string& key, const std::string& size) {
  return "<Contents><Key>" + key + "</Key><LastModified>2026-11-25T13:05:01.000Z</LastModified>"
         "<ETag>&quot;x&quot;</ETag><Size>" + size + "</Size></Contents>";
}

TEST(ListPageTest, ParsesAPage) {
  auto page = ParseListPage(Page(Item("a/1", "5") + Item("a/&lt;2&gt;", "18446744073709551615"),
                                 "<IsTruncated>true</IsTruncated>"
                                 "<NextContinuationToken>tok/+=</NextContinuationToken>"));
  ASSERT_TRUE(page) << page.error().ToString();
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[0].key, "a/1");
  EXPECT_EQ(page->objects[0].size, 5u);
  EXPECT_EQ(page->objects[1].key, "a/<2>");
  EXPECT_EQ(page->objects[1].size, UINT64_MAX);
  EXPECT_TRUE(page->truncated);
  EXPECT_EQ(page->next_token, "tok/+=");
}

TEST(ListPageTest, EmptyPage) {
  auto page = ParseListPage(Page(""));
  ASSERT_TRUE(page);
  EXPECT_TRUE(page->objects.empty());
  EXPECT_FALSE(page->truncated);
}

TEST(ListPageTest, RefusesHostileDocuments) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "not well-formed"},
      {"<html>nope</html>", "not <ListBucketResult>"},
      {Page(Item("a", "5")).substr(0, 120), "not well-formed"},
      {Page(Item("a", "-5")), "not a decimal"},
      {Page(Item("a", " 5")), "not a decimal"},
      {Page(Item("a", "5e3")), "not a decimal"},
      {Page(Item("a", "18446744073709551616")), "not a decimal"},
      {Page(Item("a", "")), "not a decimal"},
      {Page("<Contents><Key>a</Key></Contents>"), "without its <Key> or <Size>"},
      {Page("<Contents><Size>1</Size></Contents>"), "without its <Key> or <Size>"},
      {Page("<Contents><Key>a</Key><Key>b</Key><Size>1</Size></Contents>"), "two <Key>"},
      {Page("<Contents><Key>a</Key><Size>1</Size><Size>2</Size></Contents>"), "two <Size>"},
      {Page(Item("", "1")), "a <Key> of 0 bytes"},
      {Page(Item(std::string(1025, 'k'), "1")), "a <Key> of 1025 bytes"},
      {Page(Item("a&#0;b", "1")), "not well-formed"},
      {Page(Item(std::string(5000, 'k'), "1")), "longer than"},
      {Page("", ""), "no <IsTruncated>"},
      {Page("", "<IsTruncated>yes</IsTruncated>"), "not true or false"},
      {Page("", "<IsTruncated>true</IsTruncated>"), "without a <NextContinuationToken>"},
      {R"(<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>)"
       "<ListBucketResult><Contents><Key>&b;</Key><Size>1</Size></Contents></ListBucketResult>",
       "DOCTYPE"},
      {Page(std::string(20, '<') + "x"), "not well-formed"},
  };
  for (const auto& [xml, why] : cases) {
    auto page = ParseListPage(xml);
    ASSERT_FALSE(page) << xml.substr(0, 200);
    EXPECT_EQ(page.error().code(), StatusCode::kCorruption);
    EXPECT_NE(page.error().message().find(why), std::string::npos)
        << why << " vs " << page.error().message();
  }
}

TEST(ListPageTest, RefusesDeepNestingAndTooManyEntries) {
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "<x>";
  for (int i = 0; i < 40; ++i) deep += "</x>";
  auto r = ParseListPage(Page(deep));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("nested too deep"), std::string::npos);
  std::string many;
  for (int i = 0; i < 1001; ++i) many += Item("k" + std::to_string(i), "1");
  auto m = ParseListPage(Page(many));
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("more than 1000"), std::string::npos);
}

TEST(ErrorDocTest, ParsesCodeAndMessage) {
  auto doc = ParseErrorDoc(R"(<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>
<BucketName>b</BucketName><RequestId>1</RequestId></Error>)");
  EXPECT_EQ(doc.code, "NoSuchBucket");
  EXPECT_EQ(doc.message, "The specified bucket does not exist");
}

TEST(ErrorDocTest, AnythingElseGivesNoCode) {
  for (const std::string& body :
       {std::string(""), std::string("<html><body>502 Bad Gateway</body></html>"),
        std::string("<Error><Code>Bad Code!</Code></Error>"),
        std::string("<Error><Code>") + std::string(100, 'A') + "</Code></Error>",
        std::string("<Error><Code>X</Code>"),
        std::string(R"(<!DOCTYPE e [<!ENTITY x "y">]><Error><Code>&x;</Code></Error>)"),
        std::string("<Error><Message>") + std::string(2000, 'm') + "</Message></Error>"}) {
    auto doc = ParseErrorDoc(body);
    EXPECT_EQ(doc.code, "") << body.substr(0, 80);
    EXPECT_EQ(doc.message, "");
  }
}

}  // namespace
}  // namespace replboot::store::s3
