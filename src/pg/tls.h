// TLS for branches: a local certificate authority under $PGBRANCH_HOME and one server
// certificate per data directory, issued from it (OpenSSL's libcrypto; no external commands).
//
// PostgreSQL serves TLS with `ssl = on` and a certificate and key named by ssl_cert_file and
// ssl_key_file, relative names resolving in the data directory; it refuses a key file that is
// not 0600 owned by the server's account (or 0640 owned by root) (PostgreSQL docs 19.9 "Secure
// TCP/IP Connections with SSL"). A client that trusts the CA verifies the server with
// `sslmode=verify-full sslrootcert=<ca.crt>`: the chain to the CA and the host name it
// connected to, matched against the certificate's subjectAltName, IP addresses as iPAddress
// entries (docs 34.19 "SSL Support", 34.19.1 "Client Verification of Server Certificates").
//
// What is issued (RFC 5280 section 4.2.1 for each extension):
//   keys         EC P-256; signatures ECDSA with SHA-256
//   serials      16 random bytes, positive (4.1.2.2: at most 20 octets, unique per CA)
//   the CA       self-signed, valid kCaDays; basicConstraints critical CA:TRUE, pathlen 0
//                (4.2.1.9); keyUsage critical keyCertSign, cRLSign (4.2.1.3);
//                subjectKeyIdentifier (4.2.1.2)
//   servers      valid kServerCertificateDays; basicConstraints critical CA:FALSE; keyUsage
//                critical digitalSignature; extendedKeyUsage serverAuth (4.2.1.12);
//                subjectAltName with every host (4.2.1.6); subject and authority key
//                identifiers (4.2.1.1)
// Both start an hour in the past, for clients whose clocks are a little behind.

#ifndef PGBRANCH_PG_TLS_H_
#define PGBRANCH_PG_TLS_H_

#include <optional>
#include <string>
#include <vector>

#include "common/fs.h"
#include "common/status.h"

namespace pgb {

// Names inside a data directory (pgbranch.conf sets ssl_cert_file and ssl_key_file to them).
inline constexpr char kServerCertFile[] = "server.crt";
inline constexpr char kServerKeyFile[] = "server.key";

inline constexpr int kCaDays = 3650;
// 397 days: the longest lifetime every TLS client accepts for a server certificate.
inline constexpr int kServerCertificateDays = 397;
// EnsureServerCertificate replaces a certificate with less than this left.
inline constexpr int kRenewDaysBefore = 30;

// A certificate authority on disk.
struct LocalCa {
  std::string cert_path;  // absolute: <dir>/ca.crt, PEM, mode 0644
  std::string key_path;   // <dir>/ca.key, PEM (PKCS#8, unencrypted), mode 0600
  std::string cert_pem;   // the content of cert_path
};

// Returns the CA in `dir` (pgbranch uses $PGBRANCH_HOME/tls), making it first if there is none:
// `dir` (created or set to 0700), a new key written to ca.key, then the certificate to ca.crt,
// each atomically (common/fs.h WriteFileAtomic). An existing CA is loaded, never replaced.
// Safe to call from many threads and processes at once: the making happens under an exclusive
// flock of <dir>/ca.lock, and at most one CA is ever made. A ca.key without ca.crt (a crash
// between the two writes) is replaced. Errors: FailedPrecondition if ca.crt exists without
// ca.key, or either does not parse, or they do not belong together, or the CA has expired
// (naming the file and what to do); IOError for a file that cannot be read or written.
Result<LocalCa> EnsureLocalCa(const std::string& dir);

// Makes the user's own CA the one in `dir`: `cert_pem` holds its certificate first, then
// optionally the chain above it up to a root, all kept in ca.crt so that a client trusting
// ca.crt verifies branches; `key_pem` its private key (PEM, unencrypted). Everything is checked
// before anything changes: FailedPrecondition unless the certificate parses, is a CA
// (basicConstraints CA:TRUE, RFC 5280 4.2.1.9; keyCertSign where keyUsage is present, 4.2.1.3),
// is valid now, and the key parses and belongs to it. The CA there before is moved, never
// deleted, to <dir>/replaced-<UTC time>/ (returned in `replaced`; empty if there was none);
// then the key is written, then the certificate (WriteFileAtomic, 0600 and 0644). Under the
// same lock as EnsureLocalCa's making. Server certificates the old CA issued stop being
// current (EnsureServerCertificate replaces them at each branch's next start).
Result<LocalCa> InstallCa(const std::string& dir, const std::string& cert_pem,
                          const std::string& key_pem, std::string* replaced);

// What a server certificate is for.
struct ServerCertificateRequest {
  // The subject's commonName, for people ("demo/dev"); cut to 64 bytes (RFC 5280 ub-common-name).
  // Clients match host names against the subjectAltName only.
  std::string common_name;
  // Host names and addresses clients connect to: "localhost", "127.0.0.1", "::1",
  // "db.example.com". An IPv4 or IPv6 address becomes an iPAddress entry, anything else a
  // dNSName entry, which must be letters, digits, '-' and '.' (4.2.1.6, RFC 1034 preferred name
  // syntax). At least one.
  std::vector<std::string> hosts;
};

// Issues a new key and a certificate for `request`, signed by `ca`, valid `days` from now, and
// writes them to `data_dir`/server.key and then server.crt: atomically, mode 0600, owned by
// `owner` (the server's account; nullopt: the caller's). InvalidArgument for a host that is not
// an address or a valid DNS name; FailedPrecondition if the CA does not load; IOError if a
// file cannot be written (the certificate on disk is then unchanged or does not match the key,
// which EnsureServerCertificate notices).
Status IssueServerCertificate(const LocalCa& ca, const ServerCertificateRequest& request,
                              const std::string& data_dir, std::optional<FileOwner> owner,
                              int days = kServerCertificateDays);

// Keeps `data_dir`'s certificate when it is current — server.crt and server.key both parse and
// belong together, `ca` issued and signed it, it is valid now and for kRenewDaysBefore more
// days, and every host of `request` matches it — and otherwise issues a new one
// (IssueServerCertificate). Returns whether it issued one. Errors as IssueServerCertificate.
// REQUIRES: no server is starting on `data_dir` meanwhile (PostgreSQL reads the files at start
// and on reload). Thread-compatible: one call per data directory at a time.
Result<bool> EnsureServerCertificate(const LocalCa& ca, const ServerCertificateRequest& request,
                                     const std::string& data_dir, std::optional<FileOwner> owner);

// Removes `data_dir`/server.crt and server.key if present: a clone's copy of its parent's, so
// no two branches share a key.
Status RemoveServerCertificate(const std::string& data_dir);

// `uri` (a postgresql:// URI) with sslmode=verify-full and sslrootcert=`ca_path` added to its
// query: after '?' or, when it has a query already, '&'. The path is percent-encoded except for
// unreserved characters and '/' (RFC 3986 section 3.4; libpq decodes it, docs 34.1.1.2
// "Connection URIs").
std::string WithVerifyFull(const std::string& uri, const std::string& ca_path);

}  // namespace pgb

#endif  // PGBRANCH_PG_TLS_H_
