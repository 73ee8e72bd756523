// The raw libmariadb connection behind Connect, for the binlog stream (binlog_stream.cc),
// which needs the MYSQL handle itself: the same TLS, timeouts, restricted authentication
// plugins and sql_mode as every Session.
#ifndef REPLBOOT_DB_CONNECT_INTERNAL_H_
#define REPLBOOT_DB_CONNECT_INTERNAL_H_

#include <mysql.h>

#include "replboot/base/status.h"
#include "replboot/db/client.h"

namespace replboot::db {

// A connected handle the caller owns (mysql_close).
Result<MYSQL*> ConnectRaw(const ConnectOptions& options);

}  // namespace replboot::db

#endif  // REPLBOOT_DB_CONNECT_INTERNAL_H_
