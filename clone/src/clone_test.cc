// CloneFromPeers without a server: the retry rounds and the progress they report.
// (Clones that succeed run against real donors in tests/clone_test.py and the pods test.)
#include "replboot/clone/clone.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "replboot/testing/temp_dir.h"

namespace replboot::clone {
namespace {

// A loopback port nothing listens on: bound, then closed again.
uint16_t RefusingPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class CloneFromPeersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.datadir = tmp_.Path("data");
    options_.secret = "clone-test-secret";
    options_.connect_timeout = std::chrono::milliseconds(2000);
    options_.on_progress = [this](const CloneProgressEvent& e) { events_.push_back(e); };
  }

  replboot::testing::TempDir tmp_{"clone-test"};
  CloneOptions options_;
  std::vector<CloneProgressEvent> events_;
};

TEST_F(CloneFromPeersTest, FailedRoundsReportEachAttemptAndItsError) {
  const Endpoint endpoint{boost::asio::ip::make_address("127.0.0.1"), RefusingPort()};
  const std::string peer = "127.0.0.1:" + std::to_string(endpoint.port());
  RetryPolicy policy;
  policy.max_rounds = 2;
  policy.first_backoff = std::chrono::milliseconds(10);
  int discoveries = 0;
  auto result = CloneFromPeers(
      [&] {
        ++discoveries;
        return std::vector<DonorEndpoint>{{endpoint, std::nullopt}};
      },
      options_, policy);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code(), StatusCode::kUnavailable) << result.error().ToString();
  EXPECT_NE(result.error().message().find(peer), std::string::npos) << result.error().message();
  EXPECT_EQ(discoveries, 2);

  std::vector<std::string> phases;
  for (const auto& e : events_) phases.push_back(e.phase + "#" + std::to_string(e.attempt));
  EXPECT_EQ(phases,
            (std::vector<std::string>{"discovering#0", "failed#1", "discovering#1", "failed#2"}));
  ASSERT_EQ(events_.size(), 4u);
  EXPECT_EQ(events_[0].error, "");
  EXPECT_EQ(events_[1].donor, peer);
  EXPECT_NE(events_[1].error.find(peer), std::string::npos) << events_[1].error;
  // The next round still says why the last attempt failed.
  EXPECT_EQ(events_[2].error, events_[1].error);
  // Nothing was written next to the datadir.
  EXPECT_FALSE(std::filesystem::exists(options_.datadir + ".replboot-staging"));
}

TEST_F(CloneFromPeersTest, NoPeersIsUnavailableAfterTheRounds) {
  RetryPolicy policy;
  policy.max_rounds = 1;
  auto result = CloneFromPeers([] { return std::vector<DonorEndpoint>{}; }, options_, policy);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code(), StatusCode::kUnavailable);
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].phase, "discovering");
}

}  // namespace
}  // namespace replboot::clone
