// Lines of MySQL/MariaDB option files (my.cnf), written so that the servers' and the tools'
// option parser (mysys my_default.c: `my_print_defaults` shows what it reads) gets back
// exactly the value replboot meant, passwords included.
#ifndef REPLBOOT_BASE_OPTION_FILE_H_
#define REPLBOOT_BASE_OPTION_FILE_H_

#include <string>
#include <string_view>

#include "replboot/base/status.h"

namespace replboot::option_file {

// The parser reads a line into a 4096-byte buffer and cuts longer ones in two: a longer
// line would become a wrong value plus a stray option.
inline constexpr size_t kMaxLineBytes = 4000;

// `value` as the right-hand side of `name=value`: as is when it holds only letters, digits
// and _.,/:+-@ (so a rendered config stays readable), else in double quotes (where '#' and '\'' are
// literal), with '\\', '"' and the control characters the parser has escapes for
// (\b \t \n \r) escaped. Unquoted,
// the parser would end the value at '#', trim surrounding blanks, strip matching quotes and
// undo backslash escapes. kInvalidArgument for a NUL byte (the parser reads C strings).
Result<std::string> QuoteValue(std::string_view value);

// "name=<QuoteValue(value)>\n". kInvalidArgument naming `name` (never the value, which may
// be a secret) for a NUL byte or a line longer than kMaxLineBytes.
Result<std::string> Line(std::string_view name, std::string_view value);

}  // namespace replboot::option_file

#endif  // REPLBOOT_BASE_OPTION_FILE_H_
