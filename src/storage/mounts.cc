#include "storage/mounts.h"

#include <fmt/format.h>
#include <libmount/libmount.h>
#include <stdlib.h>

#include <cerrno>

namespace pgb {

Result<MountedFilesystem> FilesystemOf(const std::string& path) {
  char* real = ::realpath(path.c_str(), nullptr);
  if (real == nullptr) return PosixError(fmt::format("resolve {}", path), errno);
  std::string canonical = real;
  ::free(real);
  struct libmnt_table* table = mnt_new_table_from_file("/proc/self/mountinfo");
  if (table == nullptr) return Status::IOError("cannot read /proc/self/mountinfo");
  struct libmnt_fs* fs = mnt_table_find_mountpoint(table, canonical.c_str(), MNT_ITER_BACKWARD);
  if (fs == nullptr) {
    mnt_unref_table(table);
    return Status::NotFound(fmt::format("no mount holds {}", canonical));
  }
  auto str = [](const char* s) { return std::string(s ? s : ""); };
  MountedFilesystem out{str(mnt_fs_get_target(fs)), str(mnt_fs_get_fstype(fs)),
                        str(mnt_fs_get_source(fs)), ""};
  if (char* options = mnt_fs_strdup_options(fs)) {
    out.options = options;
    ::free(options);
  }
  mnt_unref_table(table);
  return out;
}

bool HasMountOption(const MountedFilesystem& fs, const std::string& option) {
  char* value = nullptr;
  size_t size = 0;
  return mnt_optstr_get_option(fs.options.c_str(), option.c_str(), &value, &size) == 0;
}

}  // namespace pgb
