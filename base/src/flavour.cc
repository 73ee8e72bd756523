#include "replboot/base/flavour.h"

namespace replboot {

std::string_view FlavourName(Flavour flavour) {
  switch (flavour) {
    case Flavour::kMariaDB:
      return "mariadb";
    case Flavour::kMySQL:
      return "mysql";
  }
  return "unknown";
}

Result<Flavour> ParseFlavour(std::string_view name) {
  if (name == "mariadb") return Flavour::kMariaDB;
  if (name == "mysql") return Flavour::kMySQL;
  return Error(StatusCode::kInvalidArgument, "unknown flavour '{}' (expected mariadb or mysql)",
               name);
}

}  // namespace replboot
