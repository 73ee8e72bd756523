#include "s3_xml.h"

#include <expat.h>

#include <functional>
#include <memory>

#include "s3_request.h"
#include "store_internal.h"

namespace replboot::store::s3 {

namespace {

// One expat parser that refuses DTDs and tracks the path of open elements. Elements whose
// text matters are collected (bounded by `max_text`); anything else is skipped unread.
class BoundedParser {
 public:
  using Handler = void (*)(BoundedParser*, void*, const std::string&);

  BoundedParser() : parser_(XML_ParserCreate("UTF-8"), &XML_ParserFree) {
    XML_SetUserData(parser_.get(), this);
    XML_SetElementHandler(parser_.get(), &Start, &End);
    XML_SetCharacterDataHandler(parser_.get(), &Text);
    XML_SetStartDoctypeDeclHandler(parser_.get(), &Doctype);
    XML_SetParamEntityParsing(parser_.get(), XML_PARAM_ENTITY_PARSING_NEVER);
  }

  // Parses `xml` whole; `on_start`/`on_end` see each element (depth = 1 for the root) with
  // its collected text at end. Returns "" or why the document was refused.
  template <typename OnStart, typename OnEnd>
  std::string Parse(std::string_view xml, size_t max_text, OnStart on_start, OnEnd on_end) {
    max_text_ = max_text;
    on_start_ = [&](const std::string& name) { return on_start(path_, name); };
    on_end_ = [&](const std::string& name, const std::string& text) {
      return on_end(path_, name, text);
    };
    if (xml.size() > static_cast<size_t>(INT32_MAX)) return "document too large";
    if (XML_Parse(parser_.get(), xml.data(), static_cast<int>(xml.size()), XML_TRUE) ==
        XML_STATUS_ERROR) {
      if (!error_.empty()) return error_;
      return std::string("not well-formed XML (") + XML_ErrorString(XML_GetErrorCode(parser_.get())) +
             " at line " + std::to_string(XML_GetCurrentLineNumber(parser_.get())) + ")";
    }
    return error_;
  }

 private:
  void Fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    XML_StopParser(parser_.get(), XML_FALSE);
  }

  static void Start(void* self_ptr, const XML_Char* name, const XML_Char** /*attrs*/) {
    auto* self = static_cast<BoundedParser*>(self_ptr);
    if (!self->error_.empty()) return;
    if (self->path_.size() >= kMaxXmlDepth) return self->Fail("elements nested too deep");
    std::string local(name);
    self->path_.push_back(local);
    self->text_.clear();
    std::string why = self->on_start_(local);
    if (!why.empty()) self->Fail(std::move(why));
  }

  static void End(void* self_ptr, const XML_Char* name) {
    auto* self = static_cast<BoundedParser*>(self_ptr);
    if (!self->error_.empty()) return;
    std::string why = self->on_end_(name, self->text_);
    self->text_.clear();
    if (!self->path_.empty()) self->path_.pop_back();
    if (!why.empty()) self->Fail(std::move(why));
  }

  static void Text(void* self_ptr, const XML_Char* s, int len) {
    auto* self = static_cast<BoundedParser*>(self_ptr);
    if (!self->error_.empty() || len <= 0) return;
    if (self->text_.size() + static_cast<size_t>(len) > self->max_text_) {
      return self->Fail("text of <" + (self->path_.empty() ? "" : self->path_.back()) +
                        "> longer than " + std::to_string(self->max_text_) + " bytes");
    }
    self->text_.append(s, static_cast<size_t>(len));
  }

  static void Doctype(void* self_ptr, const XML_Char*, const XML_Char*, const XML_Char*, int) {
    static_cast<BoundedParser*>(self_ptr)->Fail("a DOCTYPE (refused: no DTD, no entities)");
  }

  std::unique_ptr<XML_ParserStruct, decltype(&XML_ParserFree)> parser_;
  std::vector<std::string> path_;
  std::string text_;
  size_t max_text_ = 0;
  std::string error_;
  std::function<std::string(const std::string&)> on_start_;
  std::function<std::string(const std::string&, const std::string&)> on_end_;
};

}  // namespace

Result<ListPage> ParseListPage(std::string_view xml) {
  ListPage page;
  bool saw_truncated = false;
  bool in_contents = false;
  int keys = 0;
  int sizes = 0;
  ListedObject current;
  BoundedParser parser;
  std::string why = parser.Parse(
      xml, kMaxTokenBytes,
      [&](const std::vector<std::string>& path, const std::string& name) -> std::string {
        if (path.size() == 1 && name != "ListBucketResult") {
          return "root element <" + Printable(name, 64) + ">, not <ListBucketResult>";
        }
        if (path.size() == 2 && name == "Contents") {
          if (page.objects.size() >= kMaxEntriesPerPage) {
            return "more than " + std::to_string(kMaxEntriesPerPage) + " <Contents> in a page";
          }
          in_contents = true;
          keys = sizes = 0;
          current = {};
        }
        return "";
      },
      [&](const std::vector<std::string>& path, const std::string& name,
          const std::string& text) -> std::string {
        if (path.size() == 3 && in_contents && path[1] == "Contents") {
          if (name == "Key") {
            if (++keys > 1) return "a <Contents> with two <Key>";
            if (text.empty() || text.size() > kMaxKeyBytes) {
              return "a <Key> of " + std::to_string(text.size()) + " bytes (1.." +
                     std::to_string(kMaxKeyBytes) + ")";
            }
            if (text.find('\0') != std::string::npos) return "a <Key> with a NUL byte";
            current.key = text;
          } else if (name == "Size") {
            if (++sizes > 1) return "a <Contents> with two <Size>";
            if (!ParseUint64(text, &current.size)) {
              return "a <Size> that is not a decimal number: " + Printable(text, 40);
            }
          }
        } else if (path.size() == 2 && name == "Contents") {
          in_contents = false;
          if (keys != 1 || sizes != 1) return "a <Contents> without its <Key> or <Size>";
          page.objects.push_back(std::move(current));
        } else if (path.size() == 2 && name == "IsTruncated") {
          if (text == "true") {
            page.truncated = true;
          } else if (text != "false") {
            return "<IsTruncated> is " + Printable(text, 20) + ", not true or false";
          }
          saw_truncated = true;
        } else if (path.size() == 2 && name == "NextContinuationToken") {
          page.next_token = text;
        }
        return "";
      });
  if (!why.empty()) return Error(StatusCode::kCorruption, "ListObjectsV2 answer: {}", why);
  if (!saw_truncated) {
    return Error(StatusCode::kCorruption, "ListObjectsV2 answer: no <IsTruncated>");
  }
  if (page.truncated && page.next_token.empty()) {
    return Error(StatusCode::kCorruption,
                 "ListObjectsV2 answer: truncated without a <NextContinuationToken>");
  }
  if (!page.truncated) page.next_token.clear();
  return page;
}

ErrorDoc ParseErrorDoc(std::string_view xml) {
  ErrorDoc doc;
  BoundedParser parser;
  std::string why = parser.Parse(
      xml, 1024,
      [&](const std::vector<std::string>& path, const std::string& name) -> std::string {
        if (path.size() == 1 && name != "Error") return "not an <Error>";
        return "";
      },
      [&](const std::vector<std::string>& path, const std::string& name,
          const std::string& text) -> std::string {
        if (path.size() == 2 && name == "Code") doc.code = text;
        if (path.size() == 2 && name == "Message") doc.message = text;
        return "";
      });
  // A code is a plain identifier; anything else is not trusted as one.
  bool plain = doc.code.size() <= 64;
  for (char c : doc.code) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          c == '.')) {
      plain = false;
    }
  }
  if (!why.empty() || !plain) return {};
  return doc;
}

}  // namespace replboot::store::s3
