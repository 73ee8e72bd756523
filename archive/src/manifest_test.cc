#include "replboot/archive/manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "manifest_mac.h"

namespace replboot::archive {
namespace {

using internal::MacKind;
using nlohmann::json;
using ::testing::HasSubstr;

const BackupKey& Key() {
  static const BackupKey key = KeyFromSecret("manifest test secret 0123456789abcdef012345");
  return key;
}
const BackupKey& OtherKey() {
  static const BackupKey key = KeyFromSecret("the other cluster's secret 0123456789abcdef");
  return key;
}

Manifest Sample() {
  Manifest m;
  m.backup_id = "20261207T061500Z";
  m.cluster_id = "c0ffee00-1111-2222-3333-444455556666";
  m.node = "mysql-1";
  m.flavour = "mariadb";
  m.server_version = "10.11.6-MariaDB";
  m.tool_version = "mariabackup 10.11.6";
  m.gtid_position = "0-100-1234,1-101-7";
  m.binlog_file = "mysql-bin.000042";
  m.binlog_position = 98765;
  m.started_at_ms = 1796624100000;
  m.finished_at_ms = 1796624160000;
  m.key_id = Key().id;
  m.compression = "zstd:1";
  m.object_bytes = 4096;
  for (uint64_t i = 0; i < 3; ++i) {
    ObjectEntry e{i, i < 2 ? 4096u : 100u, i < 2 ? 2000 + i : 150,
                  std::string(64, static_cast<char>('a' + i))};
    m.logical_bytes += e.logical_bytes;
    m.stored_bytes += e.stored_bytes;
    m.objects.push_back(e);
  }
  return m;
}

json SampleJson() { return json::parse(SerializeManifest(Sample(), Key())); }

TEST(Manifest, RoundTrips) {
  Manifest m = Sample();
  auto parsed = ParseManifest(SerializeManifest(m, Key()), Key());
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  EXPECT_EQ(*parsed, m);
  // Also a backup of an empty stream.
  m.objects.clear();
  m.logical_bytes = m.stored_bytes = 0;
  parsed = ParseManifest(SerializeManifest(m, Key()), Key());
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  EXPECT_EQ(*parsed, m);
}

TEST(Manifest, AnotherKeysManifestIsPermissionDenied) {
  Manifest m = Sample();
  m.key_id = OtherKey().id;
  auto parsed = ParseManifest(SerializeManifest(m, OtherKey()), Key());
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(parsed.error().message(),
            fmt::format("manifest of backup 20261207T061500Z was made with key {}, this node's "
                        "key is {}",
                        OtherKey().id, Key().id));
}

TEST(Manifest, AnyEditFailsTheMac) {
  const std::string mac_error =
      "manifest of backup 20261207T061500Z fails its MAC (changed, or not written by a holder "
      "of the key)";
  std::vector<std::function<void(json&)>> edits = {
      [](json& j) { j["gtid_position"] = "0-100-1300"; },
      [](json& j) { j["objects"][1]["sha256"] = std::string(64, 'f'); },
      [](json& j) { j["node"] = "mysql-2"; },
      [](json& j) { j["mac"] = std::string(64, '0'); },
      // Dropping the last object and fixing the totals is still an edit.
      [](json& j) {
        j["objects"].erase(2);
        j["logical_bytes"] = 8192;
        j["stored_bytes"] = 4001;
      },
  };
  for (auto& edit : edits) {
    json j = SampleJson();
    edit(j);
    auto parsed = ParseManifest(j.dump(), Key());
    ASSERT_FALSE(parsed.has_value());
    EXPECT_EQ(parsed.error().code(), StatusCode::kCorruption);
    EXPECT_EQ(parsed.error().message(), mac_error);
  }
  // One byte of the text, e.g. a digit of a size.
  std::string text = SerializeManifest(Sample(), Key());
  size_t at = text.find("\"binlog_position\": 98765");
  ASSERT_NE(at, std::string::npos);
  text[at + 19] = '8';
  auto parsed = ParseManifest(text, Key());
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error().message(), mac_error);
}

// Documents that pass the MAC (made with the key) must still be whole and consistent: the
// strict checks are what keeps a writer's bug (or a key holder's mistake) from a restore.
TEST(Manifest, StrictChecksBehindAValidMac) {
  struct Case {
    std::string name;
    std::function<void(json&)> edit;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"missing", [](json& j) { j.erase("node"); }, "field \"node\" is missing"},
      {"unknown", [](json& j) { j["extra"] = 1; }, "unknown field \"extra\""},
      {"type", [](json& j) { j["binlog_position"] = "98765"; },
       "\"binlog_position\" is not a non-negative integer"},
      {"negative", [](json& j) { j["binlog_position"] = -1; }, "is not a non-negative integer"},
      {"float", [](json& j) { j["logical_bytes"] = 8292.0; }, "is not a non-negative integer"},
      {"huge", [](json& j) { j["stored_bytes"] = 1e30; }, "is not a non-negative integer"},
      {"string type", [](json& j) { j["cluster_id"] = 5; }, "\"cluster_id\" is not a string"},
      {"empty cluster", [](json& j) { j["cluster_id"] = ""; }, "\"cluster_id\" is empty"},
      {"control char", [](json& j) { j["node"] = "mysql-1\x1b[2J"; }, "not printable ASCII"},
      {"long", [](json& j) { j["server_version"] = std::string(300, 'v'); },
       "\"server_version\" is 300 characters long, at most 256"},
      {"id", [](json& j) { j["backup_id"] = "20261207T061500"; },
       "\"backup_id\" is not a backup id"},
      {"flavour", [](json& j) { j["flavour"] = "postgres"; }, "neither \"mariadb\" nor"},
      {"compression", [](json& j) { j["compression"] = "gzip:1"; }, "\"compression\" is not"},
      {"level", [](json& j) { j["compression"] = "zstd:23"; }, "\"compression\" is not"},
      {"object_bytes", [](json& j) { j["object_bytes"] = 100; }, "\"object_bytes\" is 100"},
      {"started", [](json& j) { j["started_at_ms"] = 0; }, "\"started_at_ms\" is 0, outside"},
      {"order", [](json& j) { j["finished_at_ms"] = 1796624000000; },
       "\"finished_at_ms\" is before \"started_at_ms\""},
      {"format", [](json& j) { j["format"] = 2; }, "format 2, this replboot reads format 1"},
      {"index gap", [](json& j) { j["objects"][1]["index"] = 2; }, "object 1 has index 2"},
      {"swapped", [](json& j) { std::swap(j["objects"][0], j["objects"][1]); },
       "object 0 has index 1"},
      {"short middle", [](json& j) { j["objects"][1]["logical_bytes"] = 4000; },
       "object 1: \"logical_bytes\" is 4000, outside 4096..4096"},
      {"last too big", [](json& j) { j["objects"][2]["logical_bytes"] = 5000; },
       "object 2: \"logical_bytes\" is 5000, outside 1..4096"},
      {"last empty", [](json& j) { j["objects"][2]["logical_bytes"] = 0; },
       "object 2: \"logical_bytes\" is 0, outside 1..4096"},
      {"stored bound", [](json& j) { j["objects"][0]["stored_bytes"] = 1 << 20; },
       "object 0: \"stored_bytes\" is 1048576, outside"},
      {"sha", [](json& j) { j["objects"][0]["sha256"] = std::string(64, 'A'); },
       "object 0: \"sha256\" is not 64 hex digits"},
      {"object field", [](json& j) { j["objects"][0]["name"] = "x"; }, "unknown field \"name\""},
      {"object type", [](json& j) { j["objects"][0] = 7; }, "object 0 is not a JSON object"},
      {"objects type", [](json& j) { j["objects"] = json::object(); },
       "\"objects\" is not an array"},
      {"logical sum", [](json& j) { j["logical_bytes"] = 8291; },
       "its objects hold 8292 logical bytes, \"logical_bytes\" says 8291"},
      {"stored sum", [](json& j) { j["stored_bytes"] = 1; },
       "its objects hold 4151 stored bytes, \"stored_bytes\" says 1"},
  };
  for (const Case& c : cases) {
    json j = SampleJson();
    c.edit(j);
    auto parsed = ParseManifest(internal::Remac(j, MacKind::kManifest, Key()), Key());
    ASSERT_FALSE(parsed.has_value()) << c.name;
    EXPECT_EQ(parsed.error().code(), StatusCode::kCorruption) << c.name;
    EXPECT_THAT(parsed.error().message(), HasSubstr(c.error)) << c.name;
  }
  // The unedited document re-MACed parses: the cases fail for their edit alone.
  EXPECT_TRUE(ParseManifest(internal::Remac(SampleJson(), MacKind::kManifest, Key()), Key()));
}

TEST(Manifest, NotAManifest) {
  for (std::string text :
       {"", "{", "[]", "null", "\"x\"", "{\"format\":1}", "{\"format\":1,\"key_id\":\"0123\"}"}) {
    auto parsed = ParseManifest(text, Key());
    ASSERT_FALSE(parsed.has_value()) << text;
    EXPECT_EQ(parsed.error().code(), StatusCode::kCorruption) << text;
    EXPECT_THAT(parsed.error().message(), HasSubstr("manifest of backup ?")) << text;
  }
  json no_mac = SampleJson();
  no_mac.erase("mac");
  auto parsed = ParseManifest(no_mac.dump(), Key());
  ASSERT_FALSE(parsed.has_value());
  EXPECT_THAT(parsed.error().message(), HasSubstr("\"mac\" is missing"));
}

TEST(Checks, RoundTripAndBinding) {
  BackupChecks c;
  c.verified_at_ms = 1796700000000;
  c.restore_tested_at_ms = 1796700500000;
  c.restore_test_error = "";
  c.restore_test_tables = 12;
  c.restore_test_rows = 1'000'000;
  c.restore_test_seconds = 93.25;
  const std::string text = SerializeChecks(c, "20261207T061500Z", Key());
  auto parsed = ParseChecks(text, "20261207T061500Z", Key());
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  EXPECT_EQ(*parsed, c);

  // Copied next to another backup.
  auto moved = ParseChecks(text, "20261208T061500Z", Key());
  ASSERT_FALSE(moved.has_value());
  EXPECT_EQ(moved.error().code(), StatusCode::kCorruption);
  EXPECT_THAT(moved.error().message(),
              HasSubstr("they are the checks of backup \"20261207T061500Z\""));

  auto other_key = ParseChecks(text, "20261207T061500Z", OtherKey());
  ASSERT_FALSE(other_key.has_value());
  EXPECT_EQ(other_key.error().code(), StatusCode::kPermissionDenied);

  json edited = json::parse(text);
  edited["verify_error"] = "";
  edited["verified_at_ms"] = 1796800000000;
  auto tampered = ParseChecks(edited.dump(), "20261207T061500Z", Key());
  ASSERT_FALSE(tampered.has_value());
  EXPECT_THAT(tampered.error().message(),
              HasSubstr("checks of backup 20261207T061500Z fails its MAC"));

  // A manifest's MAC does not pass for checks, nor the reverse: the domains differ.
  json as_checks = json::parse(text);
  as_checks["mac"] = internal::DocumentMac(as_checks, MacKind::kManifest, Key());
  EXPECT_FALSE(ParseChecks(as_checks.dump(), "20261207T061500Z", Key()).has_value());

  json bad = json::parse(text);
  bad["restore_test_seconds"] = -1;
  auto negative =
      ParseChecks(internal::Remac(bad, MacKind::kChecks, Key()), "20261207T061500Z", Key());
  ASSERT_FALSE(negative.has_value());
  EXPECT_THAT(negative.error().message(), HasSubstr("not a duration in seconds"));
}

}  // namespace
}  // namespace replboot::archive
