# Sourced by the build scripts (build.sh, fuzz.sh): one compiler-cache setting for
# every configuration.
# Paths under the checkout are hashed relative to it, so clones in other places
# (CI's clean clone) reuse the compiler cache.
export CCACHE_BASEDIR="$root"
# With debug info ccache also hashes the working directory unless told not to, and a
# clone elsewhere (CI's clean clone, a second checkout) then missed every object. Only
# the compile directory recorded in the debug info differs between such clones.
export CCACHE_NOHASHDIR=true
# The three configurations (normal, ASan+UBSan, fuzz) with debug info are ~4 GB of
# objects per state of the sources. With ccache's default 5 GB, the fuzz build -- the
# one script that did not raise the limit -- trimmed the cache at the end of every CI
# run, and the next clean clone compiled the normal and ASan builds again: CI took
# 64 min where a warm cache takes under 30.
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-16G}"
