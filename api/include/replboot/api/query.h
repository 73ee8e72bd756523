// The query string of a request (`?gtid=…&timeout=…`) and its numeric parameters. Every byte
// comes from whoever reached the port: numbers are parsed strictly (the whole text, finite,
// within the stated range), and an error names the parameter, for a 400 answer.
#ifndef REPLBOOT_API_QUERY_H_
#define REPLBOOT_API_QUERY_H_

#include <map>
#include <string>
#include <string_view>

#include "replboot/base/status.h"

namespace replboot::api {

using Query = std::map<std::string, std::string>;

// "a=1&b=%2F" → {a: "1", b: "/"}; '+' is a space; a key without '=' has value ""; a repeated
// key keeps its last value.
Query ParseQuery(std::string_view query);

// The decimal number in `text` (what std::from_chars accepts: "5", "0.25", "1e2"), within
// [min, max]. kInvalidArgument naming `name` for anything else: empty, trailing bytes, "inf",
// "nan", out of range ("timeout '1e300' is out of range [0, 60]").
Result<double> ParseNumberParam(std::string_view name, const std::string& text, double min,
                                double max);

}  // namespace replboot::api

#endif  // REPLBOOT_API_QUERY_H_
