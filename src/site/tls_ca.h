// A private certificate authority for sites that have no certificate of their own
// (`depot site init --make-ca`): an EC P-256 CA and a server certificate for the
// site's names, written as PEM files (keys 0600).
#pragma once

#include <string>
#include <vector>

#include "core/env.h"
#include "core/status.h"

namespace depot::site {

struct CaFiles {
  std::string ca_cert, cert, key;  // absolute paths
};

// Writes ca.pem, site.pem and site.key into `dir` (created 0700). The server
// certificate names every entry of `names` (DNS names or IP addresses) and is valid
// for ten years, like the CA. The CA's key signs that one certificate and is then
// discarded, never written: a copy of the data directory cannot mint certificates
// that DPs and agents would trust for other hosts.
core::Result<CaFiles> MakePrivateCa(core::Env* env, const std::string& dir,
                                    const std::string& site_code,
                                    const std::vector<std::string>& names);

}  // namespace depot::site
