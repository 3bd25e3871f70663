#include "site/tls_ca.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "core/errors.h"
#include "core/net.h"

namespace depot::site {

using core::Status;

namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Free>;

core::Result<Ptr<EVP_PKEY>> NewKey() {
  Ptr<EVP_PKEY> key(EVP_EC_gen("P-256"));
  if (!key) return core::OpenSslStatus(core::Code::kIOError, "generate EC key");
  return key;
}

Status AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, issuer, cert, nullptr, nullptr, 0);
  Ptr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return core::OpenSslStatus(core::Code::kIOError, "certificate extension " + value);
  }
  return Status::Ok();
}

core::Result<Ptr<X509>> NewCert(EVP_PKEY* key, const std::string& cn, X509* issuer,
                                EVP_PKEY* issuer_key) {
  Ptr<X509> cert(X509_new());
  if (!cert) return core::OpenSslStatus(core::Code::kIOError, "X509_new");
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 10L * 366 * 86400);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("depot"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  if (issuer == nullptr) {
    DEPOT_RETURN_IF_ERROR(
        AddExt(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
    DEPOT_RETURN_IF_ERROR(
        AddExt(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign"));
    DEPOT_RETURN_IF_ERROR(AddExt(cert.get(), signer, NID_subject_key_identifier, "hash"));
  }
  (void)issuer_key;
  return cert;
}

Status Sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0)
    return core::OpenSslStatus(core::Code::kIOError, "sign certificate");
  return Status::Ok();
}

core::Result<std::string> Pem(X509* cert, EVP_PKEY* key) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  int ok = cert != nullptr
               ? PEM_write_bio_X509(bio.get(), cert)
               : PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  if (ok != 1) return core::OpenSslStatus(core::Code::kIOError, "PEM encode");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace

core::Result<CaFiles> MakePrivateCa(core::Env* env, const std::string& dir,
                                    const std::string& site_code,
                                    const std::vector<std::string>& names) {
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(dir, 0700));
  DEPOT_ASSIGN_OR_RETURN(auto ca_key, NewKey());
  DEPOT_ASSIGN_OR_RETURN(
      auto ca, NewCert(ca_key.get(), "depot site " + site_code + " CA", nullptr, nullptr));
  DEPOT_RETURN_IF_ERROR(Sign(ca.get(), ca_key.get()));

  DEPOT_ASSIGN_OR_RETURN(auto key, NewKey());
  std::string cn = names.empty() ? "localhost" : names.front();
  DEPOT_ASSIGN_OR_RETURN(auto cert, NewCert(key.get(), cn, ca.get(), ca_key.get()));
  std::string san;
  for (const auto& n : names) {
    if (n.empty()) continue;
    san += san.empty() ? "" : ",";
    san += core::ParseIp(n).ok() ? "IP:" + n : "DNS:" + n;
  }
  if (san.empty()) san = "DNS:localhost";
  DEPOT_RETURN_IF_ERROR(AddExt(cert.get(), ca.get(), NID_subject_alt_name, san));
  DEPOT_RETURN_IF_ERROR(AddExt(cert.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE"));
  DEPOT_RETURN_IF_ERROR(AddExt(cert.get(), ca.get(), NID_key_usage, "critical,digitalSignature"));
  DEPOT_RETURN_IF_ERROR(AddExt(cert.get(), ca.get(), NID_ext_key_usage, "serverAuth"));
  DEPOT_RETURN_IF_ERROR(Sign(cert.get(), ca_key.get()));

  CaFiles f{core::JoinPath(dir, "ca.pem"), core::JoinPath(dir, "site.pem"),
            core::JoinPath(dir, "site.key")};
  DEPOT_ASSIGN_OR_RETURN(std::string ca_pem, Pem(ca.get(), nullptr));
  DEPOT_ASSIGN_OR_RETURN(std::string pem, Pem(cert.get(), nullptr));
  DEPOT_ASSIGN_OR_RETURN(std::string key_pem, Pem(nullptr, key.get()));
  DEPOT_RETURN_IF_ERROR(env->WriteFileAtomic(f.key, key_pem, 0600));
  DEPOT_RETURN_IF_ERROR(env->WriteFileAtomic(f.ca_cert, ca_pem, 0644));
  DEPOT_RETURN_IF_ERROR(env->WriteFileAtomic(f.cert, pem + ca_pem, 0644));  // chain: leaf, CA
  return f;
}

}  // namespace depot::site
