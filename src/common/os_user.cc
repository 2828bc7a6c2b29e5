#include "common/os_user.h"

#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>

namespace pgb {
namespace {

Result<OsUser> FromPasswd(const passwd& pw) {
  OsUser user;
  user.name = pw.pw_name;
  user.uid = pw.pw_uid;
  user.gid = pw.pw_gid;
  user.home = pw.pw_dir ? pw.pw_dir : "";
  int count = 32;
  for (int attempt = 0; attempt < 4; ++attempt) {
    user.groups.assign(count, 0);
    int n = count;
    if (getgrouplist(pw.pw_name, pw.pw_gid, user.groups.data(), &n) >= 0) {
      user.groups.resize(n);
      return user;
    }
    count = n > count ? n : count * 4;
  }
  return Status::Internal(fmt::format("getgrouplist {}: too many groups", user.name));
}

template <typename Lookup>
Result<OsUser> LookupWith(const std::string& what, Lookup lookup) {
  std::vector<char> buffer(16384);
  passwd pw{};
  passwd* found = nullptr;
  int rc = lookup(&pw, buffer.data(), buffer.size(), &found);
  if (rc != 0) return PosixError(fmt::format("look up OS user {}", what), rc);
  if (found == nullptr) return Status::NotFound(fmt::format("no OS user {}", what));
  return FromPasswd(pw);
}

}  // namespace

Result<OsUser> LookupOsUser(const std::string& name) {
  return LookupWith(name, [&](passwd* pw, char* buf, size_t len, passwd** out) {
    return getpwnam_r(name.c_str(), pw, buf, len, out);
  });
}

Result<OsUser> LookupOsUserById(uid_t uid) {
  return LookupWith(fmt::format("uid {}", uid),
                    [&](passwd* pw, char* buf, size_t len, passwd** out) {
                      return getpwuid_r(uid, pw, buf, len, out);
                    });
}

std::vector<std::string> ListOsUserNames() {
  // getpwent(3) walks one process-wide cursor (MT-Unsafe race:pwent): one walk at a time.
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::vector<std::string> names;
  setpwent();
  while (passwd* pw = getpwent()) names.emplace_back(pw->pw_name);
  endpwent();
  return names;
}

Result<OsUser> CurrentOsUser() { return LookupOsUserById(geteuid()); }

bool RunningAsRoot() { return geteuid() == 0; }

}  // namespace pgb
