"""The depot binary itself: what it costs at start, before any command runs."""
import os
import subprocess
import unittest

from harness import DEPOT


class BinaryTest(unittest.TestCase):
    def test_gnutls_is_not_initialised_at_start(self):
        # Debian's libcurl pulls in GnuTLS (through librtmp and libldap) although depot
        # only speaks http and https over OpenSSL; its implicit init costs every depot
        # process ~1.2 MiB of resident memory (an idle agent's budget is 16 MiB).
        # main.cc skips it through GnuTLS's documented hook; when GnuTLS initialises
        # with GNUTLS_DEBUG_LEVEL set, it says so on stderr.
        libs = subprocess.run(["ldd", DEPOT], capture_output=True, text=True, check=True).stdout
        if "libgnutls" not in libs:
            self.skipTest("this build of depot does not load GnuTLS")
        r = subprocess.run([DEPOT, "--version-info"], capture_output=True, text=True,
                           env=dict(os.environ, GNUTLS_DEBUG_LEVEL="2"), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("depot", r.stdout)
        self.assertNotIn("gnutls[", r.stderr, "GnuTLS initialised itself at start")


if __name__ == "__main__":
    unittest.main()
