#include "replboot/replication/position.h"

#include <cctype>
#include <charconv>
#include <optional>
#include <set>
#include <vector>

#include "replboot/base/files.h"

#include "text.h"

namespace replboot::replication {

namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

using text::ParseUnsigned;
using text::Split;

bool IsHex(std::string_view s) {
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool IsUuid(std::string_view s) {
  auto parts = Split(s, '-');
  static constexpr size_t kLengths[] = {8, 4, 4, 4, 12};
  if (parts.size() != 5) return false;
  for (size_t i = 0; i < 5; ++i) {
    if (parts[i].size() != kLengths[i] || !IsHex(parts[i])) return false;
  }
  return true;
}

// MySQL 8.3+ tagged GTIDs: a tag is [a-z_][a-z0-9_]{0,31}.
bool IsTag(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  auto lower = [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; };
  if (!lower(s[0])) return false;
  for (char c : s) {
    if (!lower(c) && !(c >= '0' && c <= '9')) return false;
  }
  return true;
}

Status CheckMariaDbGtid(std::string_view element, std::set<uint32_t>* domains) {
  auto parts = Split(element, '-');
  uint32_t domain = 0, server = 0;
  uint64_t seq = 0;
  if (parts.size() != 3 || !ParseUnsigned(parts[0], &domain) || !ParseUnsigned(parts[1], &server) ||
      !ParseUnsigned(parts[2], &seq)) {
    return Status(
        StatusCode::kInvalidArgument,
        fmt::format("'{}' is not a MariaDB GTID (domain-server-sequence, e.g. 0-1-100)", element));
  }
  if (!domains->insert(domain).second) {
    return Status(
        StatusCode::kInvalidArgument,
        fmt::format("GTID domain {} appears twice (at '{}'): a position has one GTID per domain",
                    domain, element));
  }
  return Status::Ok();
}

Status CheckMySqlGtid(std::string_view element) {
  auto parts = Split(element, ':');
  if (parts.size() < 2 || !IsUuid(parts[0])) {
    return Status(
        StatusCode::kInvalidArgument,
        fmt::format("'{}' is not a MySQL GTID set element (uuid:interval[:interval…])", element));
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    std::string_view part = parts[i];
    if (IsTag(part)) {
      if (i + 1 == parts.size()) {
        return Status(StatusCode::kInvalidArgument,
                      fmt::format("GTID tag '{}' in '{}' has no interval", part, element));
      }
      continue;
    }
    auto bounds = Split(part, '-');
    uint64_t lo = 0, hi = 0;
    bool ok = bounds.size() == 1 ? ParseUnsigned(bounds[0], &lo) && (hi = lo, true)
                                 : bounds.size() == 2 && ParseUnsigned(bounds[0], &lo) &&
                                       ParseUnsigned(bounds[1], &hi);
    if (!ok || lo == 0 || hi < lo) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("'{}' in '{}' is not a GTID interval (n or n-m with 1 <= n <= m)",
                                part, element));
    }
  }
  return Status::Ok();
}

std::string Where(std::string_view origin, int line) { return fmt::format("{}:{}", origin, line); }

tl::unexpected<Status> Corrupt(std::string_view origin, int line, const std::string& what) {
  return tl::unexpected(
      Status(StatusCode::kCorruption, fmt::format("{}: {}", Where(origin, line), what)));
}

// Binlog file names are embedded in CHANGE MASTER (quoted); refuse anything that is not a
// plain file name so a damaged file is reported rather than half-used.
bool IsBinlogName(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (char c : name) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    if (!ok) return false;
  }
  return name != "." && name != "..";
}

}  // namespace

Result<std::string> NormalizeGtid(std::string_view gtid, Flavour flavour) {
  std::string compact;
  for (char c : gtid) {
    if (!IsSpace(c)) compact.push_back(c);
  }
  if (compact.empty()) return compact;
  std::set<uint32_t> domains;
  for (std::string_view element : Split(compact, ',')) {
    if (element.empty()) {
      return Error(StatusCode::kInvalidArgument,
                   "GTID position '{}' has an empty element (stray comma)", compact);
    }
    Status status = flavour == Flavour::kMariaDB ? CheckMariaDbGtid(element, &domains)
                                                 : CheckMySqlGtid(element);
    if (!status.ok()) return tl::unexpected(status);
  }
  return compact;
}

Result<Position> ParseBinlogInfo(std::string_view content, std::string_view origin,
                                 Flavour flavour) {
  struct Record {
    int line = 0;
    std::string file;
    uint64_t pos = 0;
    std::string gtid;
  };
  std::vector<Record> records;
  bool continues = false;  // the previous line's GTID set ended with ',' (MySQL multi-line set)
  int last_line = 0;       // the last non-empty line
  auto lines = Split(content, '\n');
  for (size_t i = 0; i < lines.size(); ++i) {
    int line_no = static_cast<int>(i) + 1;
    std::string_view line = lines[i];
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (Trim(line).empty()) {
      if (i + 1 == lines.size()) break;  // the text after the final '\n'
      if (continues)
        return Corrupt(origin, line_no, "GTID set ends with ',' but the next line is empty");
      continue;
    }
    last_line = line_no;
    if (continues) {
      if (line.find('\t') != std::string_view::npos) {
        return Corrupt(origin, line_no,
                       "GTID set ends with ',' on the previous line, but this line has fields");
      }
      records.back().gtid += Trim(line);
      continues = records.back().gtid.back() == ',';
      continue;
    }
    std::vector<std::string_view> fields = Split(line, '\t');
    if (fields.size() == 1) {
      // Some writers separate with spaces (PXB's own test pattern allows [[:space:]]+).
      fields.clear();
      for (std::string_view f : Split(Trim(line), ' ')) {
        if (!f.empty()) fields.push_back(f);
      }
    }
    if (fields.size() < 2 || fields.size() > 3) {
      return Corrupt(
          origin, line_no,
          fmt::format("expected 'file<TAB>position[<TAB>gtid]', found {} field(s)", fields.size()));
    }
    Record record;
    record.line = line_no;
    std::string_view file = Trim(fields[0]);
    if (!IsBinlogName(file))
      return Corrupt(origin, line_no, fmt::format("'{}' is not a binlog file name", file));
    record.file = std::string(file);
    if (!ParseUnsigned(Trim(fields[1]), &record.pos) || record.pos < 4) {
      return Corrupt(origin, line_no,
                     fmt::format("'{}' is not a binlog position (a number >= 4)", Trim(fields[1])));
    }
    if (fields.size() == 3) {
      std::string_view gtid = Trim(fields[2]);
      if (gtid != "[]") record.gtid = std::string(gtid);
    }
    continues = !record.gtid.empty() && record.gtid.back() == ',';
    records.push_back(std::move(record));
  }
  if (continues) {
    return Corrupt(origin, last_line, "file ends inside a GTID set (trailing ',')");
  }
  if (records.empty()) return Corrupt(origin, 1, "no binlog position in the file (empty)");
  // The SST form lists earlier binlogs first; the position is the last line.
  const Record& last = records.back();
  auto gtid = NormalizeGtid(last.gtid, flavour);
  if (!gtid) return Corrupt(origin, last.line, gtid.error().message());
  Position position;
  position.gtid = *gtid;
  position.log_file = last.file;
  position.log_pos = last.pos;
  position.origin = std::string(origin);
  return position;
}

namespace {

// A tiny SQL tokenizer for the few statements a slave_info file holds.
struct Token {
  enum Kind { kWord, kString, kNumber, kPunct } kind;
  std::string text;  // words upper-cased; strings unquoted
  int line;
};

Result<std::vector<Token>> Tokenize(std::string_view s, std::string_view origin) {
  std::vector<Token> out;
  int line = 1;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == '\n') {
      ++line;
      ++i;
    } else if (IsSpace(c)) {
      ++i;
    } else if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
      while (i < s.size() && s[i] != '\n') ++i;  // comment to end of line
    } else if (c == '\'' || c == '"' || c == '`') {
      char quote = c;
      int start_line = line;
      std::string text;
      ++i;
      bool closed = false;
      while (i < s.size()) {
        char d = s[i];
        if (d == '\\' && quote != '`' && i + 1 < s.size()) {
          text.push_back(s[i + 1]);
          if (s[i + 1] == '\n') ++line;
          i += 2;
        } else if (d == quote) {
          if (i + 1 < s.size() && s[i + 1] == quote) {
            text.push_back(quote);
            i += 2;
          } else {
            ++i;
            closed = true;
            break;
          }
        } else {
          if (d == '\n') ++line;
          text.push_back(d);
          ++i;
        }
      }
      if (!closed) return Corrupt(origin, start_line, "unterminated quoted string");
      out.push_back(Token{quote == '`' ? Token::kWord : Token::kString, text, start_line});
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == '@') {
      std::string word;
      while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_' ||
                              s[i] == '@' || s[i] == '.')) {
        word.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(s[i]))));
        ++i;
      }
      out.push_back(Token{Token::kWord, word, line});
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      std::string number;
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
        number.push_back(s[i++]);
      out.push_back(Token{Token::kNumber, number, line});
    } else if (c == '=' || c == ',' || c == ';') {
      out.push_back(Token{Token::kPunct, std::string(1, c), line});
      ++i;
    } else {
      return Corrupt(origin, line, fmt::format("unexpected character '{}'", c));
    }
  }
  return out;
}

bool IsWord(const Token& t, std::string_view w) { return t.kind == Token::kWord && t.text == w; }

struct SlaveInfo {
  std::optional<std::string> gtid;  // from SET GLOBAL
  int gtid_line = 0;
  bool gtid_mode = false;  // master_use_gtid=slave_pos|current_pos / auto position = 1
  std::string log_file;
  std::optional<uint64_t> log_pos;
  int change_line = 0;
};

// One statement (tokens without the ';').
Status ParseStatement(const std::vector<Token>& t, std::string_view origin, SlaveInfo* info) {
  int line = t.front().line;
  auto bad = [&](int at, const std::string& what) {
    return Status(StatusCode::kCorruption, fmt::format("{}: {}", Where(origin, at), what));
  };
  // SET GLOBAL gtid_slave_pos = '…' | SET GLOBAL gtid_purged = '…' | SET @@GLOBAL.gtid_purged = '…'
  if (IsWord(t[0], "SET")) {
    size_t i = 1;
    std::string var;
    if (i < t.size() && IsWord(t[i], "GLOBAL")) ++i;
    if (i < t.size() && t[i].kind == Token::kWord) var = t[i++].text;
    if (var.rfind("@@GLOBAL.", 0) == 0) var = var.substr(9);
    if (var != "GTID_SLAVE_POS" && var != "GTID_PURGED") {
      return bad(line, fmt::format("unsupported SET statement (variable '{}')", var));
    }
    if (i + 2 != t.size() || !(t[i].kind == Token::kPunct && t[i].text == "=") ||
        t[i + 1].kind != Token::kString) {
      return bad(line, fmt::format("expected SET GLOBAL {} = '<gtid>'", var));
    }
    if (info->gtid) return bad(line, "the GTID position is set twice");
    std::string value = t[i + 1].text;
    // MySQL accepts '+gtid_set' (append); on a fresh replica it means the same set.
    if (!value.empty() && value.front() == '+') value.erase(0, 1);
    info->gtid = value;
    info->gtid_line = line;
    return Status::Ok();
  }
  // CHANGE MASTER ['name'] TO … | CHANGE REPLICATION SOURCE TO … [FOR CHANNEL '…']
  if (!IsWord(t[0], "CHANGE"))
    return bad(line, fmt::format("unsupported statement starting with '{}'", t[0].text));
  size_t i = 1;
  if (i < t.size() && IsWord(t[i], "MASTER")) {
    ++i;
    if (i < t.size() && t[i].kind == Token::kString) {
      if (!t[i].text.empty()) {
        return bad(line, fmt::format(
                             "named replication connection '{}' is not supported (one source only)",
                             t[i].text));
      }
      ++i;
    }
  } else if (i + 1 < t.size() && IsWord(t[i], "REPLICATION") && IsWord(t[i + 1], "SOURCE")) {
    i += 2;
  } else {
    return bad(line, "expected CHANGE MASTER TO or CHANGE REPLICATION SOURCE TO");
  }
  if (i >= t.size() || !IsWord(t[i], "TO")) return bad(line, "expected TO");
  ++i;
  if (info->change_line != 0)
    return bad(line,
               fmt::format("a second CHANGE statement (first at line {})", info->change_line));
  info->change_line = line;
  bool any = false;
  while (i < t.size()) {
    if (IsWord(t[i], "FOR")) {
      if (i + 3 != t.size() || !IsWord(t[i + 1], "CHANNEL") || t[i + 2].kind != Token::kString) {
        return bad(t[i].line, "expected FOR CHANNEL '<name>' at the end");
      }
      if (!t[i + 2].text.empty()) {
        return bad(t[i].line,
                   fmt::format("replication channel '{}' is not supported (one source only)",
                               t[i + 2].text));
      }
      break;
    }
    const Token& key = t[i];
    if (i + 2 >= t.size()) return bad(key.line, fmt::format("incomplete option '{}'", key.text));
    if (key.kind != Token::kWord || !(t[i + 1].kind == Token::kPunct && t[i + 1].text == "=")) {
      return bad(key.line, fmt::format("expected OPTION = value, found '{}'", key.text));
    }
    const Token& value = t[i + 2];
    if (key.text == "MASTER_USE_GTID") {
      if (value.kind != Token::kWord) return bad(value.line, "MASTER_USE_GTID needs a word");
      if (value.text == "SLAVE_POS" || value.text == "CURRENT_POS") {
        info->gtid_mode = true;
      } else if (value.text != "NO") {
        return bad(value.line, fmt::format("unknown MASTER_USE_GTID value '{}'", value.text));
      }
    } else if (key.text == "MASTER_AUTO_POSITION" || key.text == "SOURCE_AUTO_POSITION") {
      if (value.kind != Token::kNumber || (value.text != "0" && value.text != "1")) {
        return bad(value.line, fmt::format("{} must be 0 or 1", key.text));
      }
      info->gtid_mode = value.text == "1";
    } else if (key.text == "MASTER_LOG_FILE" || key.text == "SOURCE_LOG_FILE") {
      if (value.kind != Token::kString || !IsBinlogName(value.text)) {
        return bad(value.line,
                   fmt::format("{} '{}' is not a binlog file name", key.text, value.text));
      }
      info->log_file = value.text;
    } else if (key.text == "MASTER_LOG_POS" || key.text == "SOURCE_LOG_POS") {
      uint64_t pos = 0;
      if (value.kind != Token::kNumber || !ParseUnsigned(value.text, &pos) || pos < 4) {
        return bad(value.line, fmt::format("{} '{}' is not a binlog position (a number >= 4)",
                                           key.text, value.text));
      }
      info->log_pos = pos;
    } else {
      return bad(key.line, fmt::format("unsupported option {}", key.text));
    }
    any = true;
    i += 3;
    if (i < t.size()) {
      if (t[i].kind == Token::kPunct && t[i].text == ",") {
        ++i;
        if (i >= t.size()) return bad(t[i - 1].line, "trailing ','");
      } else if (!IsWord(t[i], "FOR")) {
        return bad(t[i].line, fmt::format("expected ',' between options, found '{}'", t[i].text));
      }
    }
  }
  if (!any) return bad(line, "CHANGE statement without options");
  return Status::Ok();
}

}  // namespace

Result<Position> ParseSlaveInfo(std::string_view content, std::string_view origin,
                                Flavour flavour) {
  auto tokens = Tokenize(content, origin);
  if (!tokens) return tl::unexpected(tokens.error());
  SlaveInfo info;
  std::vector<Token> statement;
  int last_line = 1;
  for (const Token& token : *tokens) {
    last_line = token.line;
    if (token.kind == Token::kPunct && token.text == ";") {
      if (statement.empty()) continue;
      Status status = ParseStatement(statement, origin, &info);
      if (!status.ok()) return tl::unexpected(status);
      statement.clear();
    } else {
      statement.push_back(token);
    }
  }
  if (!statement.empty()) {
    // mariabackup and PXB end every statement with ';': a missing one means a cut file.
    return Corrupt(origin, statement.front().line,
                   "statement not terminated by ';' (truncated file?)");
  }
  if (info.change_line == 0 && !info.gtid)
    return Corrupt(origin, last_line, "no replication position in the file");
  Position position;
  position.origin = std::string(origin);
  if (info.log_file.empty() != !info.log_pos.has_value()) {
    return Corrupt(origin, info.change_line,
                   "MASTER_LOG_FILE and MASTER_LOG_POS must be given together");
  }
  if (!info.log_file.empty()) {
    position.log_file = info.log_file;
    position.log_pos = *info.log_pos;
  }
  if (info.gtid) {
    auto gtid = NormalizeGtid(*info.gtid, flavour);
    if (!gtid) return Corrupt(origin, info.gtid_line, gtid.error().message());
    position.gtid = *gtid;
  }
  if (info.gtid_mode && !info.gtid) {
    // Auto-positioning without a GTID set would start from the source's first binlog.
    return Corrupt(origin, info.change_line,
                   "GTID auto-positioning without a SET GLOBAL of the GTID position");
  }
  if (!position.HasGtid() && !position.HasFilePos()) {
    // An empty GTID set with auto-positioning would replay the source's whole binlog history.
    return Corrupt(origin, info.gtid_line != 0 ? info.gtid_line : info.change_line,
                   "neither a GTID position nor a binlog file and position");
  }
  return position;
}

Result<Position> ReadClonePosition(const std::string& datadir, Flavour flavour) {
  auto read = [&](const char* name) -> std::optional<Result<std::string>> {
    std::string path = datadir + "/" + name;
    auto content = files::ReadFile(path);
    if (!content && content.error().code() == StatusCode::kNotFound) return std::nullopt;
    return content;
  };
  for (const char* name : {"mariadb_backup_slave_info", "xtrabackup_slave_info"}) {
    auto content = read(name);
    if (!content) continue;
    if (!*content) return tl::unexpected(content->error());
    // --slave-info on a donor that is not a replica leaves an empty file: use binlog_info.
    if (Trim(**content).empty()) continue;
    return ParseSlaveInfo(**content, datadir + "/" + name, flavour);
  }
  for (const char* name : {"mariadb_backup_binlog_info", "xtrabackup_binlog_info"}) {
    auto content = read(name);
    if (!content) continue;
    if (!*content) return tl::unexpected(content->error());
    return ParseBinlogInfo(**content, datadir + "/" + name, flavour);
  }
  return Error(
      StatusCode::kNotFound,
      "{}: no mariadb_backup_binlog_info/xtrabackup_binlog_info (was the donor's binlog off?)",
      datadir);
}

}  // namespace replboot::replication
