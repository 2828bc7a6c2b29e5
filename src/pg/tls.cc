#include "pg/tls.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>

#include "common/file_lock.h"

namespace pgb {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;

constexpr char kCaCertFile[] = "ca.crt";
constexpr char kCaKeyFile[] = "ca.key";
constexpr char kCaLockFile[] = "ca.lock";
constexpr long kBackdateSeconds = 3600;

// The cause from OpenSSL's error queue (which this empties), after `what`.
Status OpenSslError(std::string_view what) {
  std::string causes;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    causes += causes.empty() ? "" : "; ";
    causes += buf;
  }
  return Status::Internal(
      fmt::format("{}: {}", what, causes.empty() ? "OpenSSL gave no reason" : causes));
}

// No passphrase prompt on a terminal for an encrypted key: it simply does not load.
int NoPassphrase(char*, int, int, void*) { return -1; }

Result<PkeyPtr> NewKey() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return OpenSslError("generate an EC P-256 key");
  return key;
}

Result<std::string> KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError("encode a private key");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

Result<std::string> CertPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return OpenSslError("encode a certificate");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

// nullptr (and the error queue emptied) if `pem` is not one.
X509Ptr ParseCert(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr) : nullptr);
  if (!cert) ERR_clear_error();
  return cert;
}

PkeyPtr ParseKey(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr) : nullptr);
  if (!key) ERR_clear_error();
  return key;
}

// A positive random serial number of 16 bytes (RFC 5280 4.1.2.2).
Status SetRandomSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return OpenSslError("draw a serial number");
  bytes[0] = static_cast<unsigned char>((bytes[0] & 0x7f) | 0x01);  // positive, 16 bytes long
  BnPtr bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert))) {
    return OpenSslError("set a serial number");
  }
  return Status::OK();
}

// The UTF-8 `text` cut to at most `max` bytes without splitting a character.
std::string CutUtf8(std::string text, size_t max) {
  if (text.size() <= max) return text;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xc0) == 0x80) --n;
  return text.substr(0, n);
}

Status AddNameEntry(X509_NAME* name, const char* field, const std::string& value) {
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                 0) != 1) {
    return OpenSslError(fmt::format("set the subject's {}", field));
  }
  return Status::OK();
}

// One extension in OpenSSL's configuration syntax ("critical,CA:TRUE"); `ctx` names the
// certificate and its issuer, for the key identifiers.
Status AddExtension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslError(fmt::format("add the extension {} = {}", OBJ_nid2sn(nid), value));
  }
  return Status::OK();
}

// A new certificate with serial, validity and subject; the caller adds the issuer, the
// extensions and the signature.
Result<X509Ptr> NewCert(EVP_PKEY* key, const std::string& common_name, int days) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) return OpenSslError("make a certificate");
  PGB_RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kBackdateSeconds) ||
      !X509_time_adj_ex(X509_getm_notAfter(cert.get()), days, 0, nullptr) ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return OpenSslError("set a certificate's validity and key");
  }
  X509_NAME* subject = X509_get_subject_name(cert.get());
  PGB_RETURN_IF_ERROR(AddNameEntry(subject, "O", "pgbranch"));
  PGB_RETURN_IF_ERROR(AddNameEntry(subject, "CN", CutUtf8(common_name, 64)));
  return cert;
}

bool IsIpAddress(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// RFC 1034's preferred name syntax, as RFC 5280 4.2.1.6 requires of a dNSName: labels of
// letters, digits and inner hyphens, 1-63 bytes each, 253 in all.
// A DNS name, or one with a leftmost wildcard label ("*.demo.localhost", RFC 6125 6.4.3).
bool IsDnsName(const std::string& name) {
  const std::string host = name.starts_with("*.") ? name.substr(2) : name;
  if (host.empty() || host.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i <= host.size(); ++i) {
    if (i == host.size() || host[i] == '.') {
      if (label == 0 || label > 63 || host[i - 1] == '-' || host[i - label] == '-') return false;
      label = 0;
    } else if (std::isalnum(static_cast<unsigned char>(host[i])) || host[i] == '-') {
      ++label;
    } else {
      return false;
    }
  }
  return true;
}

Status AddSubjectAltNames(X509* cert, const std::vector<std::string>& hosts) {
  NamesPtr names(sk_GENERAL_NAME_new_null());
  if (!names) return OpenSslError("make a subjectAltName");
  for (const std::string& host : hosts) {
    GENERAL_NAME* name = nullptr;
    if (IsIpAddress(host)) {
      ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str());
      if (!ip) return OpenSslError(fmt::format("encode the address {}", host));
      name = GENERAL_NAME_new();
      if (!name) {
        ASN1_OCTET_STRING_free(ip);
        return OpenSslError("make a subjectAltName");
      }
      GENERAL_NAME_set0_value(name, GEN_IPADD, ip);
    } else if (IsDnsName(host)) {
      ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
      if (!dns || ASN1_STRING_set(dns, host.data(), static_cast<int>(host.size())) != 1) {
        ASN1_IA5STRING_free(dns);
        return OpenSslError(fmt::format("encode the host name {}", host));
      }
      name = GENERAL_NAME_new();
      if (!name) {
        ASN1_IA5STRING_free(dns);
        return OpenSslError("make a subjectAltName");
      }
      GENERAL_NAME_set0_value(name, GEN_DNS, dns);
    } else {
      return Status::InvalidArgument(fmt::format(
          "host {:?} is neither an IP address nor a DNS name (letters, digits, '-' and '.')",
          host));
    }
    if (sk_GENERAL_NAME_push(names.get(), name) == 0) {
      GENERAL_NAME_free(name);
      return OpenSslError("make a subjectAltName");
    }
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), /*crit=*/0, X509V3_ADD_DEFAULT) !=
      1) {
    return OpenSslError("add the subjectAltName");
  }
  return Status::OK();
}

Status Sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) == 0) return OpenSslError("sign a certificate");
  return Status::OK();
}

// Seconds from now until `t` (negative when past).
Result<long long> SecondsUntil(const ASN1_TIME* t) {
  int days = 0, seconds = 0;
  if (ASN1_TIME_diff(&days, &seconds, nullptr, t) != 1) return OpenSslError("read a validity");
  return static_cast<long long>(days) * 86400 + seconds;
}

struct LoadedCa {
  X509Ptr cert;
  PkeyPtr key;
};

// Loads the CA files, checking that they parse, belong together and are valid now.
Result<LoadedCa> LoadCa(const std::string& cert_path, const std::string& key_path,
                        const std::string& cert_pem) {
  const std::string dir = Dirname(cert_path);
  LoadedCa ca;
  ca.cert = ParseCert(cert_pem);
  if (!ca.cert) {
    return Status::FailedPrecondition(
        fmt::format("{} is not a PEM certificate; move {} away to make a new CA", cert_path, dir));
  }
  Result<std::string> key_pem = ReadFile(key_path);
  if (!key_pem.ok()) {
    if (!key_pem.status().Is(StatusCode::kNotFound)) return key_pem.status();
    return Status::FailedPrecondition(fmt::format(
        "the CA certificate {} has no key {}; move {} away to make a new CA (branches get new "
        "certificates at their next start)",
        cert_path, key_path, dir));
  }
  ca.key = ParseKey(*key_pem);
  if (!ca.key || X509_check_private_key(ca.cert.get(), ca.key.get()) != 1) {
    ERR_clear_error();
    return Status::FailedPrecondition(
        fmt::format("{} is not an unencrypted PEM key of the CA certificate {}; move {} away to "
                    "make a new CA",
                    key_path, cert_path, dir));
  }
  PGB_ASSIGN_OR_RETURN(long long left, SecondsUntil(X509_get0_notAfter(ca.cert.get())));
  if (left <= 0) {
    return Status::FailedPrecondition(fmt::format(
        "the CA certificate {} has expired; move {} away to make a new CA", cert_path, dir));
  }
  return ca;
}

Status MakeCa(const std::string& cert_path, const std::string& key_path) {
  PGB_ASSIGN_OR_RETURN(PkeyPtr key, NewKey());
  // A name of its own per CA, so two homes' CAs are told apart in a trust store.
  unsigned char tag[4];
  if (RAND_bytes(tag, sizeof(tag)) != 1) return OpenSslError("draw a CA name");
  std::string name =
      fmt::format("pgbranch local CA {:02x}{:02x}{:02x}{:02x}", tag[0], tag[1], tag[2], tag[3]);
  PGB_ASSIGN_OR_RETURN(X509Ptr cert, NewCert(key.get(), name, kCaDays));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1) {
    return OpenSslError("set the CA's issuer");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  PGB_RETURN_IF_ERROR(
      AddExtension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  PGB_RETURN_IF_ERROR(
      AddExtension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"));
  PGB_RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash"));
  PGB_RETURN_IF_ERROR(Sign(cert.get(), key.get()));
  PGB_ASSIGN_OR_RETURN(std::string key_pem, KeyPem(key.get()));
  PGB_ASSIGN_OR_RETURN(std::string cert_pem, CertPem(cert.get()));
  // The key first: a ca.crt on disk always has its key.
  PGB_RETURN_IF_ERROR(WriteFileAtomic(key_path, key_pem, 0600));
  return WriteFileAtomic(cert_path, cert_pem, 0644);
}

// Whether `cert` (with `key`) is one `ca` issued that stays valid long enough for every host.
bool IsCurrent(const LoadedCa& ca, X509* cert, EVP_PKEY* key,
               const ServerCertificateRequest& request) {
  bool ok = X509_check_private_key(cert, key) == 1 &&
            X509_check_issued(ca.cert.get(), cert) == X509_V_OK &&
            X509_verify(cert, X509_get0_pubkey(ca.cert.get())) == 1;
  if (ok) {
    Result<long long> since = SecondsUntil(X509_get0_notBefore(cert));
    Result<long long> left = SecondsUntil(X509_get0_notAfter(cert));
    ok = since.ok() && left.ok() && *since <= 0 && *left > kRenewDaysBefore * 86400LL;
  }
  for (size_t i = 0; ok && i < request.hosts.size(); ++i) {
    const std::string& host = request.hosts[i];
    // A wildcard entry is checked by a name it must cover.
    std::string name = host.starts_with("*.") ? "wildcard-check" + host.substr(1) : host;
    ok = IsIpAddress(host) ? X509_check_ip_asc(cert, host.c_str(), 0) == 1
                           : X509_check_host(cert, name.data(), name.size(), 0, nullptr) == 1;
  }
  ERR_clear_error();
  return ok;
}

// `dir` made (0700) if missing, then its ca.lock taken exclusively: what makes or replaces a CA
// holds it.
Result<std::unique_ptr<FileLock>> LockCaDir(const std::string& dir) {
  PGB_RETURN_IF_ERROR(EnsureDir(dir, 0700));
  FileLock::Options options;
  options.wait = std::chrono::seconds(30);
  options.what = "the local CA";
  return FileLock::Acquire(JoinPath(dir, kCaLockFile), options);
}

}  // namespace

Result<LocalCa> EnsureLocalCa(const std::string& dir) {
  PGB_ASSIGN_OR_RETURN(std::string abs_dir, AbsolutePath(dir));
  LocalCa out;
  out.cert_path = JoinPath(abs_dir, kCaCertFile);
  out.key_path = JoinPath(abs_dir, kCaKeyFile);
  Result<std::string> pem = ReadFile(out.cert_path);
  if (!pem.ok() && pem.status().Is(StatusCode::kNotFound)) {
    PGB_ASSIGN_OR_RETURN(std::unique_ptr<FileLock> lock, LockCaDir(abs_dir));
    pem = ReadFile(out.cert_path);  // made meanwhile by another process?
    if (!pem.ok() && pem.status().Is(StatusCode::kNotFound)) {
      PGB_RETURN_IF_ERROR(MakeCa(out.cert_path, out.key_path));
      pem = ReadFile(out.cert_path);
    }
  }
  PGB_RETURN_IF_ERROR(pem.status());
  out.cert_pem = *pem;
  PGB_RETURN_IF_ERROR(LoadCa(out.cert_path, out.key_path, out.cert_pem).status());
  return out;
}

Result<LocalCa> InstallCa(const std::string& dir, const std::string& cert_pem,
                          const std::string& key_pem, std::string* replaced) {
  replaced->clear();
  X509Ptr cert = ParseCert(cert_pem);
  if (!cert) return Status::FailedPrecondition("the certificate is not a PEM certificate");
  if (X509_check_ca(cert.get()) != 1) {
    ERR_clear_error();
    return Status::FailedPrecondition(
        "the certificate is not a CA's: it lacks basicConstraints CA:TRUE (RFC 5280 4.2.1.9)");
  }
  if ((X509_get_extension_flags(cert.get()) & EXFLAG_KUSAGE) != 0 &&
      (X509_get_key_usage(cert.get()) & KU_KEY_CERT_SIGN) == 0) {
    return Status::FailedPrecondition(
        "the CA certificate's keyUsage lacks keyCertSign: it may not sign certificates (RFC 5280 "
        "4.2.1.3)");
  }
  PGB_ASSIGN_OR_RETURN(long long since, SecondsUntil(X509_get0_notBefore(cert.get())));
  PGB_ASSIGN_OR_RETURN(long long left, SecondsUntil(X509_get0_notAfter(cert.get())));
  if (since > 0 || left <= 0) {
    return Status::FailedPrecondition(
        fmt::format("the CA certificate is not valid now (it {})",
                    since > 0 ? "becomes valid later" : "has expired"));
  }
  PkeyPtr key = ParseKey(key_pem);
  if (!key) {
    return Status::FailedPrecondition("the key is not an unencrypted PEM private key");
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return Status::FailedPrecondition("the key does not belong to the CA certificate");
  }
  // Written as PKCS#8 like a CA pgbranch makes; the certificate and chain as given.
  PGB_ASSIGN_OR_RETURN(std::string key_out, KeyPem(key.get()));
  std::string cert_out = cert_pem;
  if (!cert_out.empty() && cert_out.back() != '\n') cert_out += '\n';

  PGB_ASSIGN_OR_RETURN(std::string abs_dir, AbsolutePath(dir));
  PGB_ASSIGN_OR_RETURN(std::unique_ptr<FileLock> lock, LockCaDir(abs_dir));
  LocalCa out;
  out.cert_path = JoinPath(abs_dir, kCaCertFile);
  out.key_path = JoinPath(abs_dir, kCaKeyFile);
  if (PathExists(out.cert_path) || PathExists(out.key_path)) {
    std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &utc);
    std::string aside = JoinPath(abs_dir, fmt::format("replaced-{}", stamp));
    for (int n = 2; PathExists(aside); ++n) {
      aside = JoinPath(abs_dir, fmt::format("replaced-{}-{}", stamp, n));
    }
    PGB_RETURN_IF_ERROR(EnsureDir(aside, 0700));
    for (const char* name : {kCaCertFile, kCaKeyFile}) {
      std::string from = JoinPath(abs_dir, name), to = JoinPath(aside, name);
      if (PathExists(from) && ::rename(from.c_str(), to.c_str()) != 0) {
        return PosixError(fmt::format("move {} to {}", from, to), errno);
      }
    }
    *replaced = aside;
  }
  // The key first: a ca.crt on disk always has its key.
  PGB_RETURN_IF_ERROR(WriteFileAtomic(out.key_path, key_out, 0600));
  PGB_RETURN_IF_ERROR(WriteFileAtomic(out.cert_path, cert_out, 0644));
  out.cert_pem = cert_out;
  return out;
}

Status IssueServerCertificate(const LocalCa& ca_files, const ServerCertificateRequest& request,
                              const std::string& data_dir, std::optional<FileOwner> owner,
                              int days) {
  if (request.hosts.empty()) {
    return Status::InvalidArgument("a server certificate needs at least one host");
  }
  PGB_ASSIGN_OR_RETURN(LoadedCa ca,
                       LoadCa(ca_files.cert_path, ca_files.key_path, ca_files.cert_pem));
  PGB_ASSIGN_OR_RETURN(PkeyPtr key, NewKey());
  PGB_ASSIGN_OR_RETURN(X509Ptr cert, NewCert(key.get(), request.common_name, days));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.cert.get())) != 1) {
    return OpenSslError("set a certificate's issuer");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, ca.cert.get(), cert.get(), nullptr, nullptr, 0);
  PGB_RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE"));
  PGB_RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature"));
  PGB_RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_ext_key_usage, "serverAuth"));
  PGB_RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash"));
  PGB_RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always"));
  PGB_RETURN_IF_ERROR(AddSubjectAltNames(cert.get(), request.hosts));
  PGB_RETURN_IF_ERROR(Sign(cert.get(), ca.key.get()));
  PGB_ASSIGN_OR_RETURN(std::string key_pem, KeyPem(key.get()));
  PGB_ASSIGN_OR_RETURN(std::string cert_pem, CertPem(cert.get()));
  PGB_RETURN_IF_ERROR(WriteFileAtomic(JoinPath(data_dir, kServerKeyFile), key_pem, 0600, owner));
  return WriteFileAtomic(JoinPath(data_dir, kServerCertFile), cert_pem, 0600, owner);
}

Result<bool> EnsureServerCertificate(const LocalCa& ca_files,
                                     const ServerCertificateRequest& request,
                                     const std::string& data_dir, std::optional<FileOwner> owner) {
  PGB_ASSIGN_OR_RETURN(LoadedCa ca,
                       LoadCa(ca_files.cert_path, ca_files.key_path, ca_files.cert_pem));
  Result<std::string> cert_pem = ReadFile(JoinPath(data_dir, kServerCertFile));
  Result<std::string> key_pem = ReadFile(JoinPath(data_dir, kServerKeyFile));
  if (cert_pem.ok() && key_pem.ok()) {
    X509Ptr cert = ParseCert(*cert_pem);
    PkeyPtr key = ParseKey(*key_pem);
    if (cert && key && IsCurrent(ca, cert.get(), key.get(), request)) return false;
  } else {
    for (const Result<std::string>* r : {&cert_pem, &key_pem}) {
      if (!r->ok() && !r->status().Is(StatusCode::kNotFound)) return r->status();
    }
  }
  PGB_RETURN_IF_ERROR(IssueServerCertificate(ca_files, request, data_dir, owner));
  return true;
}

Status RemoveServerCertificate(const std::string& data_dir) {
  PGB_RETURN_IF_ERROR(RemoveFile(JoinPath(data_dir, kServerCertFile)));
  return RemoveFile(JoinPath(data_dir, kServerKeyFile));
}

std::string WithVerifyFull(const std::string& uri, const std::string& ca_path) {
  std::string encoded;
  for (unsigned char c : ca_path) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
      encoded += static_cast<char>(c);
    } else {
      encoded += fmt::format("%{:02X}", c);
    }
  }
  char separator = uri.find('?') == std::string::npos ? '?' : '&';
  return fmt::format("{}{}sslmode=verify-full&sslrootcert={}", uri, separator, encoded);
}

}  // namespace pgb
