// End-to-end tests of TLS: every branch serves TLS with a certificate from the home's local CA
// (`pgbranch ca`), which clients verify with sslmode=verify-full (PostgreSQL docs 34.19 "SSL
// Support"); the real pgbranch binary, real PostgreSQL, psql and libpq.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <memory>
#include <string>
#include <vector>

#include "common/fs.h"
#include "tests/e2e/harness.h"

namespace pgb::e2e {
namespace {

// psql with `conninfo` (key=value, no password in it) and the password in PGPASSWORD, so no
// secret is on a command line.
CommandResult Psql(const std::string& conninfo, const std::string& password,
                   const std::string& sql) {
  auto runner = NewRealProcessRunner();
  Command c;
  c.argv = {"psql", "-X", "-Atc", sql, conninfo};
  c.env = {{"PGPASSWORD", password}, {"PGCONNECT_TIMEOUT", "10"}};
  c.timeout = std::chrono::minutes(1);
  Result<CommandResult> r = runner->Run(c);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : CommandResult{};
}

// The password part of a postgresql://user:password@host URI.
std::string PasswordOf(const std::string& uri) {
  size_t at = uri.find('@');
  size_t colon = uri.rfind(':', at);
  return uri.substr(colon + 1, at - colon - 1);
}

struct Cert {
  std::string serial;  // hex
  std::string pem;
  std::string public_key_pem;
};

// The server certificate in `data_dir`, parsed.
Cert ServerCert(const std::string& data_dir) {
  Cert out;
  Result<std::string> pem = ReadFile(JoinPath(data_dir, "server.crt"));
  EXPECT_TRUE(pem.ok()) << pem.status().ToString();
  if (!pem.ok()) return out;
  out.pem = *pem;
  BIO* bio = BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  EXPECT_NE(cert, nullptr);
  if (!cert) return out;
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  char* hex = BN_bn2hex(bn);
  out.serial = hex;
  OPENSSL_free(hex);
  BN_free(bn);
  BIO* key = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(key, X509_get0_pubkey(cert));
  char* data = nullptr;
  long n = BIO_get_mem_data(key, &data);
  out.public_key_pem.assign(data, static_cast<size_t>(n));
  BIO_free(key);
  X509_free(cert);
  return out;
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// Given a project and a branch of it: `pgbranch ca` names the CA (0700 directory, key 0600) and
// prints it; psql with sslmode=verify-full and that CA reaches the branch by "localhost" over
// TLS, fails for a host name the certificate does not hold, and still connects without TLS when
// asked to; main and the branch have certificates of their own (serial and key), kept across a
// restart and new after a reset; `branch url --verify` is a URI libpq connects with, verified.
TEST(TlsE2eTest, BranchesServeTlsVerifiedByTheLocalCa) {
  Home home("copy", "2G");
  ASSERT_TRUE(home.ready());
  nlohmann::json main = home.Ok({"project", "create", "p-tls", "--json"}).Json();
  nlohmann::json dev = home.Ok({"branch", "create", "p-tls/dev", "--json"}).Json();

  // The CA.
  std::string ca = home.Ok({"ca"}).out;
  ASSERT_FALSE(ca.empty());
  ca.pop_back();
  EXPECT_EQ(ca, home.path() + "/tls/ca.crt");
  EXPECT_EQ(ModeOf(home.path() + "/tls"), 0700u);
  EXPECT_EQ(ModeOf(home.path() + "/tls/ca.key"), 0600u);
  Result<std::string> pem = ReadFile(ca);
  ASSERT_TRUE(pem.ok());
  EXPECT_EQ(home.Ok({"ca", "--pem"}).out, *pem);
  nlohmann::json ca_json = home.Ok({"ca", "--json"}).Json();
  EXPECT_EQ(ca_json["path"], ca);
  EXPECT_EQ(ca_json["pem"], *pem);

  // Verified TLS by a name in the certificate.
  const std::string dev_uri = dev["uri"];
  const std::string password = PasswordOf(dev_uri);
  const std::string port = std::to_string(dev["port"].get<int>());
  const std::string base = "port=" + port + " user=postgres dbname=postgres ";
  const std::string ssl_sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
  CommandResult ok =
      Psql(base + "host=localhost sslmode=verify-full sslrootcert=" + ca, password, ssl_sql);
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, "t\n") << ok.err;
  ok = Psql(base + "host=127.0.0.1 sslmode=verify-full sslrootcert=" + ca, password,
            "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_TRUE(ok.out == "TLSv1.2\n" || ok.out == "TLSv1.3\n") << ok.out;

  // A host name the certificate does not hold.
  CommandResult wrong =
      Psql(base + "hostaddr=127.0.0.1 host=wrong.example sslmode=verify-full sslrootcert=" + ca,
           password, "SELECT 1");
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE(wrong.err.find("does not match host name \"wrong.example\""), std::string::npos)
      << wrong.err;

  // TLS is offered, not required: a client may still connect without it, with its password.
  CommandResult plain = Psql(base + "host=127.0.0.1 sslmode=disable", password, ssl_sql);
  EXPECT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out, "f\n");
  CommandResult bad_password =
      Psql(base + "host=localhost sslmode=verify-full sslrootcert=" + ca, "wrong", "SELECT 1");
  EXPECT_NE(bad_password.exit_code, 0);
  EXPECT_NE(bad_password.err.find("password authentication failed"), std::string::npos)
      << bad_password.err;

  // Each branch has its own key and certificate, 0600 in its data directory.
  const std::string dev_dir = dev["data_dir"];
  Cert main_cert = ServerCert(main["data_dir"]);
  Cert dev_cert = ServerCert(dev_dir);
  EXPECT_NE(main_cert.serial, dev_cert.serial);
  EXPECT_NE(main_cert.public_key_pem, dev_cert.public_key_pem);
  EXPECT_EQ(ModeOf(dev_dir + "/server.key"), 0600u);
  EXPECT_EQ(ModeOf(dev_dir + "/server.crt"), 0600u);

  // A restart keeps it; a reset (a new clone of main) makes a new one.
  home.Ok({"branch", "restart", "p-tls/dev"});
  EXPECT_EQ(ServerCert(dev_dir).pem, dev_cert.pem);
  dev = home.Ok({"branch", "reset", "p-tls/dev", "--json"}).Json();
  Cert reset_cert = ServerCert(dev["data_dir"]);
  EXPECT_NE(reset_cert.serial, dev_cert.serial);
  EXPECT_NE(reset_cert.serial, main_cert.serial);

  // `branch url --verify`: the URI with sslmode=verify-full and the CA, which libpq uses as
  // is (no command line involved: the URI holds the password).
  std::string verify_uri = home.Ok({"branch", "url", "p-tls/dev", "--verify"}).out;
  ASSERT_FALSE(verify_uri.empty());
  verify_uri.pop_back();
  EXPECT_EQ(verify_uri, dev_uri + "?sslmode=verify-full&sslrootcert=" + ca);
  PGconn* conn = PQconnectdb(verify_uri.c_str());
  ASSERT_NE(conn, nullptr);
  EXPECT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  EXPECT_EQ(PQsslInUse(conn), 1);
  PGresult* res = PQexec(conn, ssl_sql.c_str());
  EXPECT_EQ(PQresultStatus(res), PGRES_TUPLES_OK) << PQerrorMessage(conn);
  if (PQresultStatus(res) == PGRES_TUPLES_OK) {
    EXPECT_STREQ(PQgetvalue(res, 0, 0), "t");
  }
  PQclear(res);
  PQfinish(conn);
}

// A team's own CA: `ca import` refuses a certificate that is not a CA's and a key of another
// certificate, changing nothing; then takes the team's pair, keeps the CA before it aside, and
// after a restart the branch is verified against the team's own CA file.
TEST(TlsE2eTest, ImportedCaIssuesBranchCertificates) {
  Home home("copy", "2G");
  ASSERT_TRUE(home.ready());
  nlohmann::json main = home.Ok({"project", "create", "p-ca", "--json"}).Json();
  const std::string dir = home.path() + "/team";
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  ASSERT_TRUE(WriteFileAtomic(dir + "/openssl.cnf",
                              "[req]\ndistinguished_name = dn\n[dn]\n"
                              "[ca_ext]\nbasicConstraints = critical,CA:TRUE\n"
                              "keyUsage = critical,keyCertSign,cRLSign\n"
                              "subjectKeyIdentifier = hash\n"
                              "[leaf_ext]\nbasicConstraints = critical,CA:FALSE\n",
                              0600)
                  .ok());
  for (const auto& [name, ext] : {std::pair{"ca", "ca_ext"}, std::pair{"leaf", "leaf_ext"}}) {
    MustRun({"openssl",
             "req",
             "-x509",
             "-config",
             dir + "/openssl.cnf",
             "-extensions",
             ext,
             "-newkey",
             "ec",
             "-pkeyopt",
             "ec_paramgen_curve:P-256",
             "-nodes",
             "-keyout",
             dir + "/" + name + ".key",
             "-out",
             dir + "/" + name + ".crt",
             "-days",
             "30",
             "-subj",
             std::string("/CN=team ") + name});
  }
  const std::string before = home.Ok({"ca", "--pem"}).out;
  CliResult not_ca =
      home.Run({"ca", "import", "--cert", dir + "/leaf.crt", "--key", dir + "/leaf.key"});
  EXPECT_EQ(not_ca.exit_code, 1);
  EXPECT_NE(not_ca.err.find("is not a CA's"), std::string::npos) << not_ca.err;
  CliResult wrong_key =
      home.Run({"ca", "import", "--cert", dir + "/ca.crt", "--key", dir + "/leaf.key"});
  EXPECT_EQ(wrong_key.exit_code, 1);
  EXPECT_NE(wrong_key.err.find("the key does not belong to the CA certificate"), std::string::npos)
      << wrong_key.err;
  EXPECT_EQ(home.Ok({"ca", "--pem"}).out, before);

  nlohmann::json imported =
      home.Ok({"ca", "import", "--cert", dir + "/ca.crt", "--key", dir + "/ca.key", "--json"})
          .Json();
  EXPECT_EQ(imported["path"], home.path() + "/tls/ca.crt");
  EXPECT_EQ(imported["pem"], ReadFile(dir + "/ca.crt").value());
  EXPECT_EQ(ReadFile(imported["replaced"].get<std::string>() + "/ca.crt").value(), before);
  EXPECT_EQ(ModeOf(home.path() + "/tls/ca.key"), 0600u);

  home.Ok({"branch", "restart", "p-ca/main"});
  const std::string conninfo = fmt::format(
      "host=localhost port={} user=postgres dbname=postgres sslmode=verify-full "
      "sslrootcert={}/ca.crt",
      main["port"].get<int>(), dir);
  CommandResult ok = Psql(conninfo, PasswordOf(main["uri"]),
                          "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
  EXPECT_EQ(ok.out, "t\n") << ok.err;
  home.Ok({"project", "delete", "p-ca", "--force"});
}

}  // namespace
}  // namespace pgb::e2e
