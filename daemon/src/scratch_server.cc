#include "scratch_server.h"

namespace replboot::daemon {

std::string TailLines(const std::string& text, size_t lines) {
  size_t end = text.size();
  while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == '\r')) --end;
  size_t pos = end;
  for (size_t n = 0; n < lines && pos > 0; ++n) {
    const size_t nl = text.rfind('\n', pos - 1);
    pos = nl == std::string::npos ? 0 : nl;
  }
  std::string tail = text.substr(pos == 0 ? 0 : pos + 1, end - (pos == 0 ? 0 : pos + 1));
  std::string out;
  for (char c : tail) {
    if (c == '\n') {
      out += " | ";
    } else if (c != '\r') {
      out += c;
    }
  }
  return out;
}

Result<std::unique_ptr<db::Session>> ConnectScratchServer(ScratchServer& server,
                                                          const NodeSettings& settings,
                                                          const ScratchServerPaths& paths,
                                                          std::chrono::seconds timeout,
                                                          std::chrono::seconds read_timeout,
                                                          const std::stop_token& stop,
                                                          const std::string& root_password) {
  const auto start = std::chrono::steady_clock::now();
  db::ConnectOptions connect;
  connect.socket = paths.socket;
  connect.user = "root";
  connect.password = root_password;
  connect.connect_timeout = std::chrono::seconds(2);
  connect.read_timeout = read_timeout;
  std::string last_error = "no attempt yet";
  auto error_log_tail = [&] {
    auto text = files::ReadFile(paths.error_log);
    return text ? TailLines(*text, 8) : std::string("(no error log)");
  };
  for (;;) {
    if (stop.stop_requested()) {
      return Error(StatusCode::kCancelled, "stop requested while the server started");
    }
    auto s = db::Connect(connect);
    if (s) {
      if (auto one = (*s)->Query("SELECT 1"); one) return std::move(*s);
      else last_error = one.error().message();
    } else {
      last_error = s.error().message();
    }
    auto ended = server.WaitFor(std::chrono::milliseconds(250));
    if (!ended) return Error(ended.error());
    if (*ended) {
      return Error(StatusCode::kUnavailable,
                   "{} exited before accepting a connection: {}; its error log ends: {}",
                   settings.server_binary, (*ended)->ToString(), error_log_tail());
    }
    if (std::chrono::steady_clock::now() - start >= timeout) {
      return Error(StatusCode::kTimeout,
                   "the server accepted no connection on {} within {}s ({}); its error log "
                   "ends: {}",
                   paths.socket, timeout.count(), last_error, error_log_tail());
    }
  }
}

}  // namespace replboot::daemon
