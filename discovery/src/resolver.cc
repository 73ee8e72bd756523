#include "replboot/discovery/resolver.h"

namespace replboot::discovery {

std::string_view LookupErrorName(LookupError error) {
  switch (error) {
    case LookupError::kNxDomain:
      return "nxdomain";
    case LookupError::kNoData:
      return "nodata";
    case LookupError::kServFail:
      return "servfail";
    case LookupError::kRefused:
      return "refused";
    case LookupError::kTimeout:
      return "timeout";
    case LookupError::kCancelled:
      return "cancelled";
    case LookupError::kOther:
      return "error";
  }
  return "error";
}

Status LookupFailure::ToStatus() const {
  switch (error) {
    case LookupError::kNxDomain:
    case LookupError::kNoData:
      return Status(StatusCode::kNotFound, message);
    case LookupError::kTimeout:
      return Status(StatusCode::kTimeout, message);
    case LookupError::kCancelled:
      return Status(StatusCode::kCancelled, message);
    case LookupError::kServFail:
    case LookupError::kRefused:
    case LookupError::kOther:
      return Status(StatusCode::kUnavailable, message);
  }
  return Status(StatusCode::kUnavailable, message);
}

}  // namespace replboot::discovery
