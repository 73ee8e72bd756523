#include "replboot/base/status.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace replboot {
namespace {

Result<int> Half(int n) {
  if (n % 2 != 0) return Error(StatusCode::kInvalidArgument, "{} is odd", n);
  return n / 2;
}

TEST(StatusTest, ResultCarriesValueOrError) {
  EXPECT_EQ(*Half(4), 2);
  auto odd = Half(3);
  ASSERT_FALSE(odd.has_value());
  EXPECT_EQ(odd.error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(odd.error().ToString(), "invalid argument: 3 is odd");
}

TEST(StatusTest, ContextPrefixesMessageAndKeepsCode) {
  Status s = Status(StatusCode::kCorruption, "bad chunk").WithContext("peer mysql-1");
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_EQ(s.message(), "peer mysql-1: bad chunk");
}

TEST(StatusTest, FullDiskIsNoSpace) {
  EXPECT_EQ(ErrnoStatus(ENOSPC, "write ibdata1").code(), StatusCode::kNoSpace);
  EXPECT_EQ(ErrnoStatus(EDQUOT, "write ibdata1").code(), StatusCode::kNoSpace);
  EXPECT_EQ(ErrnoStatus(EIO, "write").code(), StatusCode::kIOError);
}

}  // namespace
}  // namespace replboot

// The one exit-code table (base/exit_code.h) every subcommand uses.
#include "replboot/base/exit_code.h"

namespace replboot {
namespace {

TEST(ExitCodeTest, StatusesMapToTheTable) {
  EXPECT_EQ(cli::ExitCodeFor(Status::Ok()), 0);
  EXPECT_EQ(cli::ExitCodeFor(Status(StatusCode::kInvalidArgument, "x")), cli::kExitConfig);
  EXPECT_EQ(cli::ExitCodeFor(Status(StatusCode::kPermissionDenied, "x")), cli::kExitRefused);
  EXPECT_EQ(cli::ExitCodeFor(Status(StatusCode::kNoSpace, "x")), cli::kExitNoSpace);
  EXPECT_EQ(cli::ExitCodeFor(Status(StatusCode::kCorruption, "x")), cli::kExitFailed);
  EXPECT_EQ(cli::ExitCodeFor(Status(StatusCode::kUnavailable, "x")), cli::kExitFailed);
  // Distinct codes: a script can tell each case apart.
  EXPECT_NE(cli::kExitUnavailable, cli::kExitRefused);
  EXPECT_NE(cli::kExitRefused, cli::kExitNoSpace);
}

}  // namespace
}  // namespace replboot
