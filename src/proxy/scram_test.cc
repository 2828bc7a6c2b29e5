#include "proxy/scram.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pgb::proxy {
namespace {

using namespace std::string_literals;

// RFC 7677 section 3: SCRAM-SHA-256 for user "user", password "pencil".
constexpr std::string_view kRfcClientNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view kRfcSalt =
    "\x5b\x6d\x99\x68\x9d\x12\x35\x8e\xec\xa0\x4b\x14\x12\x36\xfa\x81";
constexpr std::string_view kRfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kRfcClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kRfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

// What PostgreSQL 15 stored in pg_authid.rolpassword for password "pencil" (initdb --pwfile,
// --auth=scram-sha-256; read back in single-user mode).
constexpr std::string_view kPostgresSecret =
    "SCRAM-SHA-256$4096:OCBVmfpfDmwJIHzYB05YXw==$TeE23Ls2rzDQK5mD3fU8WjrXi+Onb5fODZ6AfekLcSg=:"
    "ilyFvRQDuKzvNgoBsI/EWPTfIv3AD6eLk9E0h/0Pz8c=";

// A verifier cheap to build, for tests that only exercise message parsing: the server side
// never runs PBKDF2, so its iteration count costs nothing there.
const ScramVerifier& CheapVerifier() {
  static const ScramVerifier v = ScramVerifier::FromPassword("pencil", "saltsalt", 1);
  return v;
}

// Given the RFC's nonce, the client sends the RFC's client-first and, on the RFC's
// server-first, the RFC's proof; it accepts the RFC's server signature and no other.
TEST(ScramTest, Rfc7677ClientVector) {
  ScramClient client("pencil", std::string(kRfcClientNonce), "user");
  EXPECT_EQ(client.ClientFirst(), kRfcClientFirst);
  Result<std::string> final_message = client.ServerFirst(kRfcServerFirst);
  ASSERT_TRUE(final_message.ok()) << final_message.status().ToString();
  EXPECT_EQ(*final_message, kRfcClientFinal);
  Status st = client.ServerFinal(kRfcServerFinal);
  EXPECT_TRUE(st.ok()) << st.ToString();

  ScramClient wrong("pencil", std::string(kRfcClientNonce), "user");
  ASSERT_TRUE(wrong.ServerFirst(kRfcServerFirst).ok());
  // The last base64 character changed: 32 bytes still, one bit off.
  st = wrong.ServerFinal("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G0=");
  EXPECT_EQ(st.code(), StatusCode::kUnauthenticated) << st.ToString();
  // '5' instead of '4' sets bits base64 leaves unused: the same bytes, spelled non-canonically,
  // is refused as malformed.
  st = wrong.ServerFinal("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
}

// Given the verifier of "pencil" with the RFC's salt and the RFC's server nonce, the server
// answers the RFC's client-first with the RFC's server-first, accepts the RFC's proof and
// returns the RFC's server signature.
TEST(ScramTest, Rfc7677ServerVector) {
  ScramVerifier v = ScramVerifier::FromPassword("pencil", kRfcSalt, 4096);
  EXPECT_EQ(v.iterations, 4096);
  EXPECT_EQ(v.salt, kRfcSalt);
  ScramServer server(v, std::string(kRfcServerNonce));
  Result<std::string> first = server.ClientFirst(kRfcClientFirst);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(*first, kRfcServerFirst);
  Result<std::string> final_message = server.ClientFinal(kRfcClientFinal);
  ASSERT_TRUE(final_message.ok()) << final_message.status().ToString();
  EXPECT_EQ(*final_message, kRfcServerFinal);
}

// The client's default client-first carries an empty n=, as libpq's does; the server ignores
// n= (PostgreSQL takes the user from the startup message), so both run to the end with random
// nonces and each side accepts the other.
TEST(ScramTest, ClientServerRoundTrip) {
  ScramVerifier v = ScramVerifier::Make("s3cret-Pass");
  EXPECT_EQ(v.iterations, kDefaultScramIterations);
  EXPECT_EQ(v.salt.size(), 16u);
  for (int i = 0; i < 2; ++i) {
    ScramServer server(v);
    ScramClient client("s3cret-Pass");
    std::string client_first = client.ClientFirst();
    EXPECT_EQ(client_first.substr(0, 7), "n,,n=,r");
    EXPECT_EQ(client_first.size(), 7 + 1 + 24u);  // 18 random bytes in base64
    Result<std::string> server_first = server.ClientFirst(client_first);
    ASSERT_TRUE(server_first.ok()) << server_first.status().ToString();
    Result<std::string> client_final = client.ServerFirst(*server_first);
    ASSERT_TRUE(client_final.ok()) << client_final.status().ToString();
    Result<std::string> server_final = server.ClientFinal(*client_final);
    ASSERT_TRUE(server_final.ok()) << server_final.status().ToString();
    Status st = client.ServerFinal(*server_final);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  // Two clients draw different nonces.
  EXPECT_NE(ScramClient("x").ClientFirst(), ScramClient("x").ClientFirst());

  // Any n= is ignored, as PostgreSQL ignores it.
  ScramServer server(v);
  ScramClient client("s3cret-Pass", "", "someone,else=");
  EXPECT_NE(client.ClientFirst().find("n=someone=2Celse=3D,r="), std::string::npos);
  Result<std::string> server_first = server.ClientFirst(client.ClientFirst());
  ASSERT_TRUE(server_first.ok());
  Result<std::string> client_final = client.ServerFirst(*server_first);
  ASSERT_TRUE(client_final.ok());
  EXPECT_TRUE(server.ClientFinal(*client_final).ok());
}

// A client with the wrong password is refused as Unauthenticated, never InvalidArgument; a
// client talking to a server that does not know the password refuses its signature.
TEST(ScramTest, WrongPassword) {
  ScramVerifier v = ScramVerifier::Make("right");
  ScramServer server(v);
  ScramClient client("wrong");
  Result<std::string> server_first = server.ClientFirst(client.ClientFirst());
  ASSERT_TRUE(server_first.ok());
  Result<std::string> client_final = client.ServerFirst(*server_first);
  ASSERT_TRUE(client_final.ok());
  Result<std::string> got = server.ClientFinal(*client_final);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(got.status().message(), "password authentication failed");

  // A server that does not know the password (a verifier of another password, same salt and
  // count) cannot check the proof of a client that does; the client refuses any signature but
  // the real server's.
  ScramClient client2("right", "cli");
  ScramServer real(v, "srv");
  ScramServer fake(ScramVerifier::FromPassword("other", v.salt, v.iterations), "srv");
  server_first = real.ClientFirst(client2.ClientFirst());
  ASSERT_TRUE(server_first.ok());
  Result<std::string> fake_first = fake.ClientFirst(client2.ClientFirst());
  ASSERT_TRUE(fake_first.ok());
  EXPECT_EQ(*fake_first, *server_first);  // the same salt, count and nonces
  client_final = client2.ServerFirst(*server_first);
  ASSERT_TRUE(client_final.ok());
  EXPECT_EQ(fake.ClientFinal(*client_final).status().code(), StatusCode::kUnauthenticated);
  Result<std::string> real_final = real.ClientFinal(*client_final);
  ASSERT_TRUE(real_final.ok()) << real_final.status().ToString();
  std::string forged = *real_final;
  forged[2] = forged[2] == 'A' ? 'B' : 'A';
  EXPECT_EQ(client2.ServerFinal(forged).code(), StatusCode::kUnauthenticated);
  Status st = client2.ServerFinal(*real_final);
  EXPECT_TRUE(st.ok()) << st.ToString();
}

// Every malformed client-first-message, and a channel-binding request, is InvalidArgument.
TEST(ScramTest, ServerRefusesMalformedClientFirst) {
  const std::vector<std::string> bad = {
      "",
      "p=tls-server-end-point,,n=,r=abc",  // channel binding asked for
      "x,,n=,r=abc",
      "n",
      "n,",
      "n,,",
      "n,,n=",
      "n,a=bob,n=,r=abc",  // authzid
      "n,,r=abc",          // n= missing
      "n,,n=,r=",          // empty nonce
      "n,,n=,r=a b",       // space is not printable in SCRAM's sense
      "n,,n=,r=a\x7f",
      "n,,n=,r=abc\0"s,
      "n,,m=ext,n=,r=abc",  // mandatory extension
      "n,,n=,r=abc,",       // trailing comma
      "n,,n=,r=abc,c",      // an attribute without '='
      "n,,n=,x=abc",
      "n,,1=,r=abc",
      "nn,,n=,r=abc",
  };
  for (const std::string& m : bad) {
    ScramServer server(CheapVerifier(), "srv");
    Result<std::string> got = server.ClientFirst(m);
    ASSERT_FALSE(got.ok()) << m;
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << m;
  }
  // Extensions after r= are ignored; 'y' (client could bind, server did not offer) is fine.
  for (std::string m : {"n,,n=,r=abc,x=ext", "y,,n=bob,r=abc"}) {
    ScramServer server(CheapVerifier(), "srv");
    Result<std::string> got = server.ClientFirst(m);
    ASSERT_TRUE(got.ok()) << m << ": " << got.status().ToString();
    EXPECT_EQ(*got, "r=abcsrv,s=c2FsdHNhbHQ=,i=1");
  }
}

// After a good client-first, a client-final with a tampered nonce, a channel-binding echo
// that does not match the gs2 header, or broken syntax is InvalidArgument; a well-formed
// message with a wrong proof is Unauthenticated.
TEST(ScramTest, ServerRefusesMalformedClientFinal) {
  // Built with a real client so the last case is a genuinely valid message.
  ScramVerifier v = ScramVerifier::FromPassword("pencil", "saltsalt", 4096);
  ScramClient client("pencil", "cli");
  Result<std::string> server_first = ScramServer(v, "srv").ClientFirst(client.ClientFirst());
  ASSERT_TRUE(server_first.ok());
  Result<std::string> valid = client.ServerFirst(*server_first);
  ASSERT_TRUE(valid.ok()) << valid.status().ToString();
  ASSERT_EQ(valid->substr(0, 18), "c=biws,r=clisrv,p=");
  const std::string proof = valid->substr(18);
  const std::string zero_proof = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

  struct Case {
    std::string client_first;
    std::string client_final;
    StatusCode code;
  };
  const std::vector<Case> cases = {
      {"n,,n=,r=cli", "c=biws,r=clisrX,p=" + proof, StatusCode::kInvalidArgument},
      {"n,,n=,r=cli", "c=biws,r=cli,p=" + proof, StatusCode::kInvalidArgument},
      {"n,,n=,r=cli", "c=biws,r=clisrvx,p=" + proof, StatusCode::kInvalidArgument},
      {"n,,n=,r=cli", "c=eSws,r=clisrv,p=" + proof, StatusCode::kInvalidArgument},
      {"y,,n=,r=cli", "c=biws,r=clisrv,p=" + proof, StatusCode::kInvalidArgument},
      {"n,,n=,r=cli", "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCwsAAAA,r=clisrv,p=" + proof,
       StatusCode::kInvalidArgument},
      {"n,,n=,r=cli", "", StatusCode::kInvalidArgument},
      {"n,,n=,r=cli", "c=biws,r=clisrv", StatusCode::kInvalidArgument},
      {"n,,n=,r=cli", "r=clisrv,c=biws,p=" + proof, StatusCode::kInvalidArgument},
      {"n,,n=,r=cli", "c=biws,r=clisrv,p=" + proof + ",", StatusCode::kInvalidArgument},
      {"n,,n=,r=cli", "c=biws,r=clisrv,p=" + proof + ",x=1", StatusCode::kInvalidArgument},
      {"n,,n=,r=cli", "c=biws,r=clisrv,p=not base64!", StatusCode::kInvalidArgument},
      {"n,,n=,r=cli", "c=biws,r=clisrv,p=AAAA", StatusCode::kInvalidArgument},  // 3 bytes
      {"n,,n=,r=cli", "c=biws,r=clisrv,p=" + proof.substr(0, 40), StatusCode::kInvalidArgument},
      {"n,,n=,r=cli", "c=biws,r=clisrv,p=" + proof + "\0"s, StatusCode::kInvalidArgument},
      {"n,,n=,r=cli", "c=biws,r=clisrv,p=" + zero_proof, StatusCode::kUnauthenticated},
      // The proof covers the client-first-bare: another n= makes the same proof wrong.
      {"n,,n=x,r=cli", "c=biws,r=clisrv,p=" + proof, StatusCode::kUnauthenticated},
      // An extension before p= is allowed by the grammar but changes what the proof covers.
      {"n,,n=,r=cli", "c=biws,r=clisrv,x=1,p=" + proof, StatusCode::kUnauthenticated},
      {"n,,n=,r=cli", *valid, StatusCode::kOk},
  };
  for (const Case& c : cases) {
    ScramServer server(v, "srv");
    ASSERT_TRUE(server.ClientFirst(c.client_first).ok()) << c.client_first;
    Result<std::string> got = server.ClientFinal(c.client_final);
    EXPECT_EQ(got.status().code(), c.code)
        << c.client_first << " / " << c.client_final << ": " << got.status().ToString();
  }
}

// Calls out of order are refused, and one exchange checks one proof.
TEST(ScramTest, ServerOrder) {
  ScramServer server(CheapVerifier(), "srv");
  EXPECT_EQ(server.ClientFinal("c=biws,r=x,p=AAAA").status().code(),
            StatusCode::kFailedPrecondition);
  ASSERT_TRUE(server.ClientFirst("n,,n=,r=abc").ok());
  EXPECT_EQ(server.ClientFirst("n,,n=,r=abc").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(server.ClientFinal("c=biws,r=abcsrv,p=AAAA").ok());
  EXPECT_EQ(server.ClientFinal("c=biws,r=abcsrv,p=AAAA").status().code(),
            StatusCode::kFailedPrecondition);
}

// The client refuses a server-first that does not extend its nonce, lacks or garbles salt or
// iteration count, asks for fewer than 4096 iterations or requires an extension; a
// server-final carrying e= or garbage is InvalidArgument.
TEST(ScramTest, ClientRefusesMalformedServerMessages) {
  const std::vector<std::string> bad_first = {
      "",
      "r=cli,s=c2FsdA==,i=4096",     // server added nothing
      "r=xyzsrv,s=c2FsdA==,i=4096",  // not our nonce
      "r=clisrv,s=,i=4096",          // empty salt
      "r=clisrv,s=c2FsdA=,i=4096",   // bad base64
      "r=clisrv,s=c2FsdA==,i=4095",  // too few iterations
      "r=clisrv,s=c2FsdA==,i=0",
      "r=clisrv,s=c2FsdA==,i=-4096",
      "r=clisrv,s=c2FsdA==,i=99999999999",
      "r=clisrv,s=c2FsdA==,i=4096x",
      "r=clisrv,s=c2FsdA==",
      "r=clisrv,i=4096,s=c2FsdA==",
      "m=ext,r=clisrv,s=c2FsdA==,i=4096",
      "e=other-error",
      "r=cli srv,s=c2FsdA==,i=4096",
  };
  for (const std::string& m : bad_first) {
    ScramClient client("pencil", "cli");
    Result<std::string> got = client.ServerFirst(m);
    ASSERT_FALSE(got.ok()) << m;
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << m;
  }

  ScramClient client("pencil", "cli");
  EXPECT_EQ(client.ServerFinal("v=AAAA").code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(client.ServerFirst("r=clisrv,s=c2FsdA==,i=4096,x=ext").ok());
  for (const std::string& m : {""s, "e=invalid-proof"s, "v=AAAA"s, "v=!"s, "x=1"s, "v"s}) {
    Status st = client.ServerFinal(m);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << m << ": " << st.ToString();
  }
  EXPECT_EQ(client.ServerFinal("e=invalid-proof").message(),
            "SCRAM authentication failed on the server: invalid-proof");
}

// Parse reads what ToString writes, and what PostgreSQL itself stores; FromPassword with
// PostgreSQL's salt and count gives PostgreSQL's keys.
TEST(ScramTest, VerifierParseAndToString) {
  Result<ScramVerifier> pg = ScramVerifier::Parse(kPostgresSecret);
  ASSERT_TRUE(pg.ok()) << pg.status().ToString();
  EXPECT_EQ(pg->iterations, 4096);
  EXPECT_EQ(pg->salt.size(), 16u);
  EXPECT_EQ(pg->ToString(), kPostgresSecret);
  ScramVerifier mine = ScramVerifier::FromPassword("pencil", pg->salt, pg->iterations);
  EXPECT_EQ(mine.stored_key, pg->stored_key);
  EXPECT_EQ(mine.server_key, pg->server_key);
  EXPECT_EQ(mine.ToString(), kPostgresSecret);

  for (const ScramVerifier& v : {ScramVerifier::Make("a"), ScramVerifier::FromPassword("b", "s", 1),
                                 ScramVerifier::FromPassword("c", "\0\xff\x01"s, 10000)}) {
    Result<ScramVerifier> back = ScramVerifier::Parse(v.ToString());
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->iterations, v.iterations);
    EXPECT_EQ(back->salt, v.salt);
    EXPECT_EQ(back->stored_key, v.stored_key);
    EXPECT_EQ(back->server_key, v.server_key);
  }
  // The salt decides the keys; Make draws a fresh one each time.
  EXPECT_NE(ScramVerifier::Make("a").ToString(), ScramVerifier::Make("a").ToString());
}

// Parse refuses MD5 and plain passwords and every broken part, and never repeats the secret
// in its message.
TEST(ScramTest, VerifierParseRefuses) {
  const std::string keys =
      "TeE23Ls2rzDQK5mD3fU8WjrXi+Onb5fODZ6AfekLcSg=:ilyFvRQDuKzvNgoBsI/EWPTfIv3AD6eLk9E0h/0Pz8c=";
  const std::string short_key = "TeE23Ls2rzDQK5mD3fU8WjrXi+Onb5fODZ6AfekLcQ==";  // 31 bytes
  const std::vector<std::string> bad = {
      "",
      "md5a3556571e93b0d20722ba62be61e8c2d",
      "pencil",
      "SCRAM-SHA-256",
      "SCRAM-SHA-256$",
      "SCRAM-SHA-1$4096:OCBVmfpfDmwJIHzYB05YXw==$" + keys,
      "scram-sha-256$4096:OCBVmfpfDmwJIHzYB05YXw==$" + keys,
      "SCRAM-SHA-256$4096:OCBVmfpfDmwJIHzYB05YXw==",
      "SCRAM-SHA-256$4096:OCBVmfpfDmwJIHzYB05YXw==$",
      "SCRAM-SHA-256$4096OCBVmfpfDmwJIHzYB05YXw==$" + keys,
      "SCRAM-SHA-256$0:OCBVmfpfDmwJIHzYB05YXw==$" + keys,
      "SCRAM-SHA-256$-1:OCBVmfpfDmwJIHzYB05YXw==$" + keys,
      "SCRAM-SHA-256$x:OCBVmfpfDmwJIHzYB05YXw==$" + keys,
      "SCRAM-SHA-256$4096:$" + keys,
      "SCRAM-SHA-256$4096: OCBVmfpfDmwJIHzYB05YXw==$" + keys,
      "SCRAM-SHA-256$4096:OCBVmfpfDmwJIHzYB05YXw=$" + keys,
      "SCRAM-SHA-256$4096:OCBVmfpfDmwJIHzYB05YXx==$" + keys,  // non-canonical
      "SCRAM-SHA-256$4096:OCBVmfpfDmwJIHzYB05YXw==$" + keys + "\n",
      "SCRAM-SHA-256$4096:OCBVmfpfDmwJIHzYB05YXw==$" + short_key + ":" + short_key,
      "SCRAM-SHA-256$4096:OCBVmfpfDmwJIHzYB05YXw==$" + keys + "$",
      "SCRAM-SHA-256$4096:OCBVmfpfDmwJIHzYB05YXw==$" + keys + "=",
      "SCRAM-SHA-256$4096:OCBVmfpfDmwJIHzYB05YXw==$" + keys.substr(0, 44),
  };
  for (const std::string& text : bad) {
    Result<ScramVerifier> got = ScramVerifier::Parse(text);
    ASSERT_FALSE(got.ok()) << text;
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_EQ(got.status().message().find("a3556571"), std::string::npos);
    EXPECT_EQ(got.status().message().find("OCBV"), std::string::npos);
  }
}

}  // namespace
}  // namespace pgb::proxy
