// Test support only: a scripted db::Session for unit tests: answers by statement prefix, records
// what ran, and fails on request (the failure knobs the health and configure decisions are
// tested with). Only test binaries that link replboot_db may include it.
#ifndef REPLBOOT_TESTING_FAKE_SESSION_H_
#define REPLBOOT_TESTING_FAKE_SESSION_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "replboot/db/client.h"

namespace replboot::testing {

inline db::Row MakeRow(
    const std::vector<std::pair<std::string, std::optional<std::string>>>& cells) {
  auto columns = std::make_shared<std::vector<std::string>>();
  std::vector<std::optional<std::string>> values;
  for (const auto& [name, value] : cells) {
    columns->push_back(name);
    values.push_back(value);
  }
  return db::Row(columns, std::move(values));
}

class FakeSession : public db::Session {
 public:
  using Handler = std::function<Result<std::vector<db::Row>>(const std::string&)>;

  // Statements starting with `prefix` get `handler`'s answer; the longest prefix wins.
  void On(const std::string& prefix, Handler handler) { handlers_[prefix] = std::move(handler); }
  void OnRows(const std::string& prefix, std::vector<db::Row> rows) {
    On(prefix, [rows](const std::string&) -> Result<std::vector<db::Row>> { return rows; });
  }
  void OnError(const std::string& prefix, Status status, unsigned errnum) {
    On(prefix, [this, status, errnum](const std::string&) -> Result<std::vector<db::Row>> {
      errno_ = errnum;
      return tl::unexpected(status);
    });
  }

  Status Execute(const std::string& sql) override {
    auto rows = Query(sql);
    return rows ? Status::Ok() : rows.error();
  }
  Result<std::vector<db::Row>> Query(const std::string& sql) override {
    executed.push_back(sql);
    errno_ = 0;
    const Handler* best = nullptr;
    size_t best_len = 0;
    for (const auto& [prefix, handler] : handlers_) {
      if (sql.rfind(prefix, 0) == 0 && prefix.size() >= best_len) {
        best = &handler;
        best_len = prefix.size();
      }
    }
    if (best) return (*best)(sql);
    return std::vector<db::Row>{};
  }
  unsigned LastErrorNumber() const override { return errno_; }

  std::vector<std::string> executed;

 private:
  std::map<std::string, Handler> handlers_;
  unsigned errno_ = 0;
};

}  // namespace replboot::testing

#endif  // REPLBOOT_TESTING_FAKE_SESSION_H_
