// OS accounts: who runs PostgreSQL.
//
// PostgreSQL refuses to run as root, so when pgbranch runs as root its server processes run as
// an unprivileged account (default "postgres"). Lookups go through getpwnam_r/getgrouplist.

#ifndef PGBRANCH_COMMON_OS_USER_H_
#define PGBRANCH_COMMON_OS_USER_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"

namespace pgb {

struct OsUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
  std::vector<gid_t> groups;  // supplementary groups, including gid
};

// Looks up `name` in the password database. NotFound if there is no such account.
Result<OsUser> LookupOsUser(const std::string& name);

// Looks up the account with `uid`. NotFound if there is none.
Result<OsUser> LookupOsUserById(uid_t uid);

// The names of every account in the password database (getpwent(3): /etc/passwd and whatever
// nsswitch.conf adds), in its order. Thread-safe: calls are serialized (getpwent's cursor is
// process-wide); no other code in pgbranch may call getpwent.
std::vector<std::string> ListOsUserNames();

// The account of the calling process (by effective uid).
Result<OsUser> CurrentOsUser();

// True when the process runs with effective uid 0.
bool RunningAsRoot();

}  // namespace pgb

#endif  // PGBRANCH_COMMON_OS_USER_H_
