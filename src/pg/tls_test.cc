#include "pg/tls.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "runtime/test_instance.h"

namespace pgb {
namespace {

using test::TempDir;

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

X509Ptr ReadCert(const std::string& path) {
  Result<std::string> pem = ReadFile(path);
  EXPECT_TRUE(pem.ok()) << pem.status().ToString();
  if (!pem.ok()) return nullptr;
  BIO* bio = BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size()));
  X509Ptr cert(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  EXPECT_NE(cert, nullptr) << path;
  return cert;
}

// The content of `path`, or "<unreadable path>".
std::string Read(const std::string& path) {
  Result<std::string> text = ReadFile(path);
  return text.ok() ? *text : "<unreadable " + path + ">";
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// X509_verify_cert of `leaf` against `ca` as the only trust anchor, for a TLS server; the
// OpenSSL verification error (X509_V_OK when it chains).
int VerifyChain(X509* ca, X509* leaf) {
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf, nullptr);
  X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
  int ok = X509_verify_cert(ctx);
  int error = ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return error;
}

ServerCertificateRequest DevRequest() {
  ServerCertificateRequest r;
  r.common_name = "demo/dev";
  r.hosts = {"localhost", "127.0.0.1", "db.example.com", "::1"};
  return r;
}

std::string SerialOf(X509* cert) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string out = hex;
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

// The first use makes the CA in a new 0700 directory: a key (0600) and a self-signed
// certificate that is a CA (basicConstraints critical CA:TRUE, keyUsage keyCertSign and cRLSign),
// EC P-256, valid about ten years.
TEST(TlsTest, EnsureLocalCaMakesCaWithModesAndExtensions) {
  TempDir tmp;
  const std::string dir = JoinPath(tmp.path(), "tls");
  Result<LocalCa> ca = EnsureLocalCa(dir);
  ASSERT_TRUE(ca.ok()) << ca.status().ToString();
  EXPECT_EQ(ca->cert_path, JoinPath(dir, "ca.crt"));
  EXPECT_EQ(ca->key_path, JoinPath(dir, "ca.key"));
  EXPECT_EQ(ModeOf(dir), 0700u);
  EXPECT_EQ(ModeOf(ca->key_path), 0600u);
  EXPECT_EQ(ModeOf(ca->cert_path), 0644u);
  EXPECT_EQ(Read(ca->cert_path), ca->cert_pem);

  X509Ptr cert = ReadCert(ca->cert_path);
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(X509_get_version(cert.get()), 2);  // v3
  EXPECT_EQ(X509_check_ca(cert.get()), 1);
  EXPECT_EQ(X509_check_issued(cert.get(), cert.get()), X509_V_OK);  // self-signed
  int crit = -1;
  auto* bc = static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(cert.get(), NID_basic_constraints, &crit, nullptr));
  ASSERT_NE(bc, nullptr);
  EXPECT_EQ(crit, 1);
  EXPECT_TRUE(bc->ca);
  BASIC_CONSTRAINTS_free(bc);
  EXPECT_EQ(X509_get_key_usage(cert.get()), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_NE(X509_get0_subject_key_id(cert.get()), nullptr);
  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  EXPECT_EQ(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
  EXPECT_EQ(EVP_PKEY_get_bits(key), 256);
  EXPECT_EQ(X509_get_signature_nid(cert.get()), NID_ecdsa_with_SHA256);
  int days = 0, seconds = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert.get())), 1);
  EXPECT_GE(days, 3649);
  EXPECT_LE(days, 3650);
}

// A second call (and a call from another thread at the same time as the first) finds the CA
// made by the first: one CA, never replaced.
TEST(TlsTest, EnsureLocalCaReusesTheCa) {
  TempDir tmp;
  const std::string dir = JoinPath(tmp.path(), "tls");
  std::vector<std::string> pems(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < pems.size(); ++i) {
    threads.emplace_back([&, i] {
      Result<LocalCa> ca = EnsureLocalCa(dir);
      EXPECT_TRUE(ca.ok()) << ca.status().ToString();
      if (ca.ok()) pems[i] = ca->cert_pem;
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& pem : pems) EXPECT_EQ(pem, pems[0]);
  std::string key = Read(JoinPath(dir, "ca.key"));

  Result<LocalCa> again = EnsureLocalCa(dir);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->cert_pem, pems[0]);
  EXPECT_EQ(Read(JoinPath(dir, "ca.key")), key);
}

// A certificate without its key, or garbage, is reported (naming the file), not replaced; a
// key without its certificate (a crash between the two writes) is replaced by a new CA.
TEST(TlsTest, EnsureLocalCaRefusesABrokenCa) {
  TempDir tmp;
  const std::string dir = JoinPath(tmp.path(), "tls");
  ASSERT_TRUE(EnsureLocalCa(dir).ok());
  const std::string key = JoinPath(dir, "ca.key");
  ASSERT_TRUE(RemoveFile(key).ok());
  Result<LocalCa> no_key = EnsureLocalCa(dir);
  EXPECT_EQ(no_key.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(no_key.status().message().find("ca.key"), std::string::npos)
      << no_key.status().message();

  ASSERT_TRUE(WriteFileAtomic(key, "not a key\n", 0600).ok());
  Result<LocalCa> bad_key = EnsureLocalCa(dir);
  EXPECT_EQ(bad_key.status().code(), StatusCode::kFailedPrecondition);

  ASSERT_TRUE(RemoveFile(JoinPath(dir, "ca.crt")).ok());
  Result<LocalCa> remade = EnsureLocalCa(dir);
  EXPECT_TRUE(remade.ok()) << remade.status().ToString();
}

// A server certificate chains to the CA (X509_verify_cert, purpose TLS server), names every
// host in its subjectAltName (DNS names and IP addresses) and no other, is a leaf
// (CA:FALSE, serverAuth), and its key and certificate are 0600 in the data directory.
TEST(TlsTest, IssueServerCertificateChainsToTheCaWithNames) {
  TempDir tmp;
  Result<LocalCa> ca = EnsureLocalCa(JoinPath(tmp.path(), "tls"));
  ASSERT_TRUE(ca.ok()) << ca.status().ToString();
  const std::string data_dir = JoinPath(tmp.path(), "data");
  ASSERT_TRUE(EnsureDir(data_dir, 0700).ok());
  Status s = IssueServerCertificate(*ca, DevRequest(), data_dir, std::nullopt);
  ASSERT_TRUE(s.ok()) << s.ToString();
  const std::string crt = JoinPath(data_dir, kServerCertFile);
  const std::string key = JoinPath(data_dir, kServerKeyFile);
  EXPECT_EQ(ModeOf(crt), 0600u);
  EXPECT_EQ(ModeOf(key), 0600u);

  X509Ptr ca_cert = ReadCert(ca->cert_path);
  X509Ptr leaf = ReadCert(crt);
  ASSERT_TRUE(ca_cert && leaf);
  EXPECT_EQ(VerifyChain(ca_cert.get(), leaf.get()), X509_V_OK);
  EXPECT_EQ(X509_check_ca(leaf.get()), 0);
  EXPECT_EQ(X509_check_purpose(leaf.get(), X509_PURPOSE_SSL_SERVER, 0), 1);
  EXPECT_EQ(X509_get_extended_key_usage(leaf.get()), static_cast<uint32_t>(XKU_SSL_SERVER));
  EXPECT_NE(X509_get0_authority_key_id(leaf.get()), nullptr);
  EXPECT_EQ(X509_check_host(leaf.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(leaf.get(), "db.example.com", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "::1", 0), 1);
  EXPECT_EQ(X509_check_host(leaf.get(), "wrong.example", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "127.0.0.2", 0), 0);
  // Exactly the four names.
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(leaf.get(), NID_subject_alt_name, nullptr, nullptr));
  ASSERT_NE(names, nullptr);
  EXPECT_EQ(sk_GENERAL_NAME_num(names), 4);
  GENERAL_NAMES_free(names);
  int days = 0, seconds = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(leaf.get())), 1);
  EXPECT_GE(days, kServerCertificateDays - 1);
  EXPECT_LE(days, kServerCertificateDays);

  // Another CA's certificate does not verify it.
  Result<LocalCa> other = EnsureLocalCa(JoinPath(tmp.path(), "other"));
  ASSERT_TRUE(other.ok());
  X509Ptr other_cert = ReadCert(other->cert_path);
  EXPECT_NE(VerifyChain(other_cert.get(), leaf.get()), X509_V_OK);
}

// A host that is neither an address nor a DNS name is refused and nothing is written.
TEST(TlsTest, IssueServerCertificateRefusesBadHosts) {
  TempDir tmp;
  Result<LocalCa> ca = EnsureLocalCa(JoinPath(tmp.path(), "tls"));
  ASSERT_TRUE(ca.ok());
  for (std::string bad : {"a,DNS:evil", "", "-lead.example", "sp ace", "x..y"}) {
    ServerCertificateRequest r;
    r.common_name = "demo/x";
    r.hosts = {"localhost", bad};
    EXPECT_EQ(IssueServerCertificate(*ca, r, tmp.path(), std::nullopt).code(),
              StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_FALSE(PathExists(JoinPath(tmp.path(), kServerCertFile)));
  EXPECT_FALSE(PathExists(JoinPath(tmp.path(), kServerKeyFile)));
}

// EnsureServerCertificate issues when there is none, keeps a current one, and issues anew when
// the certificate names fewer hosts than asked, belongs to another CA, is near its end, or its
// key was lost.
TEST(TlsTest, EnsureServerCertificateKeepsOnlyACurrentOne) {
  TempDir tmp;
  Result<LocalCa> ca = EnsureLocalCa(JoinPath(tmp.path(), "tls"));
  ASSERT_TRUE(ca.ok());
  const std::string dir = tmp.path();
  const std::string crt = JoinPath(dir, kServerCertFile);
  ServerCertificateRequest request = DevRequest();

  Result<bool> issued = EnsureServerCertificate(*ca, request, dir, std::nullopt);
  ASSERT_TRUE(issued.ok()) << issued.status().ToString();
  EXPECT_TRUE(*issued);
  std::string first = Read(crt);
  issued = EnsureServerCertificate(*ca, request, dir, std::nullopt);
  ASSERT_TRUE(issued.ok());
  EXPECT_FALSE(*issued);
  EXPECT_EQ(Read(crt), first);

  request.hosts.push_back("10.1.2.3");
  issued = EnsureServerCertificate(*ca, request, dir, std::nullopt);
  ASSERT_TRUE(issued.ok());
  EXPECT_TRUE(*issued);
  X509Ptr leaf = ReadCert(crt);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "10.1.2.3", 0), 1);

  Result<LocalCa> other = EnsureLocalCa(JoinPath(tmp.path(), "other"));
  ASSERT_TRUE(other.ok());
  issued = EnsureServerCertificate(*other, request, dir, std::nullopt);
  ASSERT_TRUE(issued.ok());
  EXPECT_TRUE(*issued);
  X509Ptr other_ca = ReadCert(other->cert_path);
  leaf = ReadCert(crt);
  EXPECT_EQ(VerifyChain(other_ca.get(), leaf.get()), X509_V_OK);

  ASSERT_TRUE(
      IssueServerCertificate(*other, request, dir, std::nullopt, kRenewDaysBefore - 1).ok());
  issued = EnsureServerCertificate(*other, request, dir, std::nullopt);
  ASSERT_TRUE(issued.ok());
  EXPECT_TRUE(*issued);

  ASSERT_TRUE(RemoveFile(JoinPath(dir, kServerKeyFile)).ok());
  issued = EnsureServerCertificate(*other, request, dir, std::nullopt);
  ASSERT_TRUE(issued.ok());
  EXPECT_TRUE(*issued);
  EXPECT_TRUE(PathExists(JoinPath(dir, kServerKeyFile)));
}

// InstallCa takes another CA's certificate and key (a team's own; here one EnsureLocalCa made
// elsewhere), moving the CA before it aside; certificates of the old CA stop being current.
// A certificate that is not a CA's and a key of another certificate are refused, nothing
// changed.
TEST(TlsTest, InstallCaReplacesTheCaKeepingTheOldOneAside) {
  TempDir tmp;
  const std::string dir = JoinPath(tmp.path(), "tls");
  Result<LocalCa> old_ca = EnsureLocalCa(dir);
  ASSERT_TRUE(old_ca.ok());
  Result<LocalCa> team = EnsureLocalCa(JoinPath(tmp.path(), "team"));
  ASSERT_TRUE(team.ok());
  const std::string team_key = Read(team->key_path);
  const std::string server_dir = JoinPath(tmp.path(), "server");
  ASSERT_TRUE(EnsureDir(server_dir, 0700).ok());
  ASSERT_TRUE(EnsureServerCertificate(*old_ca, DevRequest(), server_dir, std::nullopt).ok());
  const std::string leaf_pem = Read(JoinPath(server_dir, kServerCertFile));
  const std::string leaf_key = Read(JoinPath(server_dir, kServerKeyFile));

  std::string replaced = "unset";
  Result<LocalCa> refused = InstallCa(dir, leaf_pem, leaf_key, &replaced);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.status().Is(StatusCode::kFailedPrecondition));
  EXPECT_NE(refused.status().message().find("not a CA's"), std::string::npos);
  refused = InstallCa(dir, team->cert_pem, leaf_key, &replaced);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("does not belong"), std::string::npos);
  refused = InstallCa(dir, team->cert_pem, "not a key", &replaced);
  EXPECT_FALSE(refused.ok());
  EXPECT_EQ(Read(old_ca->cert_path), old_ca->cert_pem);

  Result<LocalCa> installed = InstallCa(dir, team->cert_pem, team_key, &replaced);
  ASSERT_TRUE(installed.ok()) << installed.status().ToString();
  EXPECT_EQ(installed->cert_pem, team->cert_pem);
  EXPECT_EQ(Read(JoinPath(dir, "ca.crt")), team->cert_pem);
  EXPECT_EQ(ModeOf(JoinPath(dir, "ca.key")), 0600u);
  EXPECT_EQ(replaced.rfind(JoinPath(dir, "replaced-"), 0), 0u) << replaced;
  EXPECT_EQ(Read(JoinPath(replaced, "ca.crt")), old_ca->cert_pem);
  EXPECT_TRUE(PathExists(JoinPath(replaced, "ca.key")));
  // EnsureLocalCa now loads the team's CA, and the old CA's server certificate is replaced.
  Result<LocalCa> loaded = EnsureLocalCa(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->cert_pem, team->cert_pem);
  Result<bool> issued = EnsureServerCertificate(*loaded, DevRequest(), server_dir, std::nullopt);
  ASSERT_TRUE(issued.ok());
  EXPECT_TRUE(*issued);
  X509Ptr team_cert = ReadCert(team->cert_path);
  X509Ptr leaf = ReadCert(JoinPath(server_dir, kServerCertFile));
  EXPECT_EQ(VerifyChain(team_cert.get(), leaf.get()), X509_V_OK);
}

// Two certificates for one request differ in serial number and key.
TEST(TlsTest, EachCertificateHasItsOwnSerialAndKey) {
  TempDir tmp;
  Result<LocalCa> ca = EnsureLocalCa(JoinPath(tmp.path(), "tls"));
  ASSERT_TRUE(ca.ok());
  const std::string a = JoinPath(tmp.path(), "a"), b = JoinPath(tmp.path(), "b");
  ASSERT_TRUE(EnsureDir(a, 0700).ok() && EnsureDir(b, 0700).ok());
  ASSERT_TRUE(IssueServerCertificate(*ca, DevRequest(), a, std::nullopt).ok());
  ASSERT_TRUE(IssueServerCertificate(*ca, DevRequest(), b, std::nullopt).ok());
  X509Ptr ca_cert = ReadCert(JoinPath(a, kServerCertFile));
  X509Ptr cb_cert = ReadCert(JoinPath(b, kServerCertFile));
  ASSERT_TRUE(ca_cert && cb_cert);
  EXPECT_NE(SerialOf(ca_cert.get()), SerialOf(cb_cert.get()));
  EXPECT_NE(EVP_PKEY_eq(X509_get0_pubkey(ca_cert.get()), X509_get0_pubkey(cb_cert.get())), 1);
  EXPECT_NE(Read(JoinPath(a, kServerKeyFile)), Read(JoinPath(b, kServerKeyFile)));
}

// WithVerifyFull appends to a URI without a query with '?', to one with a query with '&', and
// percent-encodes what a query value cannot hold; libpq reads the path back unchanged.
TEST(TlsTest, WithVerifyFullEncodesTheCaPath) {
  EXPECT_EQ(
      WithVerifyFull("postgresql://u:p@127.0.0.1:5432/postgres", "/var/lib/pgbranch/tls/ca.crt"),
      "postgresql://u:p@127.0.0.1:5432/postgres?sslmode=verify-full&sslrootcert=/var/lib/"
      "pgbranch/tls/ca.crt");
  EXPECT_EQ(
      WithVerifyFull("postgresql://h/db?application_name=x", "/a b&c=d%/ca.crt"),
      "postgresql://h/db?application_name=x&sslmode=verify-full&sslrootcert=/a%20b%26c%3Dd%25/"
      "ca.crt");
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(
      WithVerifyFull("postgresql://u:p@localhost:5432/postgres", "/a b&c=d%?/é/ca.crt").c_str(),
      &error);
  ASSERT_NE(options, nullptr) << (error ? error : "");
  std::map<std::string, std::string> parsed;
  for (PQconninfoOption* o = options; o->keyword; ++o) {
    if (o->val) parsed[o->keyword] = o->val;
  }
  PQconninfoFree(options);
  EXPECT_EQ(parsed["sslmode"], "verify-full");
  EXPECT_EQ(parsed["sslrootcert"], "/a b&c=d%?/é/ca.crt");
  EXPECT_EQ(parsed["password"], "p");
}

}  // namespace
}  // namespace pgb
