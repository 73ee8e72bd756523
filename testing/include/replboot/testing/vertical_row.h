// Test support only: one row of a recorded `mariadb -e '…\G'` / `mysql -e '…\G'` output (e.g.
// SHOW SLAVE STATUS in db/testdata/) as a db::Row, so status parsing is tested against what a
// server prints. Lines are "Column: value" (the name right-aligned, so leading spaces are
// dropped), the value is the rest of the line after ": ", "NULL" is NULL, and the
// "*** 1. row ***" banner is skipped. Only test binaries that link replboot_db may include it.
#ifndef REPLBOOT_TESTING_VERTICAL_ROW_H_
#define REPLBOOT_TESTING_VERTICAL_ROW_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "replboot/base/files.h"
#include "replboot/base/status.h"
#include "replboot/db/client.h"

namespace replboot::testing {

inline Result<db::Row> ReadVerticalRow(const std::string& path) {
  auto content = files::ReadFile(path);
  if (!content) return tl::unexpected(content.error());
  auto columns = std::make_shared<std::vector<std::string>>();
  std::vector<std::optional<std::string>> values;
  size_t start = 0;
  int line_no = 0;
  while (start < content->size()) {
    size_t end = content->find('\n', start);
    if (end == std::string::npos) end = content->size();
    std::string line = content->substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.empty() || line.front() == '*') continue;
    size_t colon = line.find(':');
    if (colon == std::string::npos) {
      return Error(StatusCode::kCorruption, "{}:{}: no 'Column: value'", path, line_no);
    }
    size_t name_start = line.find_first_not_of(' ');
    columns->push_back(line.substr(name_start, colon - name_start));
    std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    values.push_back(value == "NULL" ? std::nullopt : std::optional<std::string>(value));
  }
  return db::Row(columns, std::move(values));
}

}  // namespace replboot::testing

#endif  // REPLBOOT_TESTING_VERTICAL_ROW_H_
