# Sourced by ./diffuse and ./test. Checks and installs what Diffuse needs, idempotently, and says what it changes.
# Needs only the .NET 10 SDK. NuGet packages (TorchSharp, libtorch ~600 MB) are restored into ~/.nuget/packages on
# first use; no system files change, no root needed. TorchSharp's native library is made loadable on GCC 12 runtimes
# (Debian 12, Ubuntu 22.04) by a build step (build/TorchSharpNativeFix.targets) that edits only our own build output.

diffuse_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

diffuse_say() { printf 'setup: %s\n' "$*" >&2; }

if ! command -v dotnet >/dev/null 2>&1; then
  diffuse_say "the .NET SDK (10.0 or newer) is required and was not found on PATH."
  diffuse_say "install it from your distribution or with Microsoft's dotnet-install script, then run this again."
  exit 1
fi
diffuse_sdk_major="$(dotnet --version 2>/dev/null | cut -d. -f1)"
if [ -z "$diffuse_sdk_major" ] || [ "$diffuse_sdk_major" -lt 10 ]; then
  diffuse_say "the .NET SDK 10.0 or newer is required; found $(dotnet --version 2>/dev/null || echo none)."
  exit 1
fi

# Restore once; later runs find the packages and restore nothing.
diffuse_packages="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
if [ ! -d "$diffuse_packages/libtorch-cpu-linux-x64/2.10.0" ] && [ "$(uname -s)" = "Linux" ]; then
  diffuse_say "first run: restoring NuGet packages (TorchSharp 0.107.0, libtorch 2.10 CPU, ~650 MB) into $diffuse_packages"
fi

# MPI for data-parallel training (mpiexec -n N diffuse train …) and its tests. Called by ./test, not by ./diffuse: a
# single process needs no MPI. Installs MPICH from the distribution when it is missing (root only); otherwise says what
# to run. Diffuse loads libmpich.so.12 at run time, so the development package (libmpich-dev) is not needed.
diffuse_has_libmpich() {
  local cache
  cache="$(/sbin/ldconfig -p 2>/dev/null || ldconfig -p 2>/dev/null || true)"
  case "$cache" in *"libmpich.so.12 "*) return 0 ;; esac
  for dir in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib; do
    [ -e "$dir/libmpich.so.12" ] && return 0
  done
  return 1
}
# diffuse_apt_install <what> <what it is for> <packages...>: installs Debian/Ubuntu packages (root only), refreshing the
# package lists once if the first attempt fails; otherwise, or without apt-get, says what to run. Never fails the caller.
diffuse_apt_install() {
  local what="$1" purpose="$2"; shift 2
  if [ "$(uname -s)" != "Linux" ] || ! command -v apt-get >/dev/null 2>&1; then
    diffuse_say "$what is needed for $purpose and was not found; install it ($*) with your system's package manager."
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    diffuse_say "$what is needed for $purpose and was not found. Install it with:"
    diffuse_say "  sudo apt-get update && sudo apt-get install -y $*"
    return 0
  fi
  diffuse_say "installing $what for $purpose: apt-get install -y $*"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2; then
    diffuse_say "refreshing the package lists (apt-get update) and trying again"
    apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2 \
      || { diffuse_say "could not install $what; $purpose will not work until 'apt-get install -y $*' does."; return 0; }
  fi
  diffuse_say "installed $what"
}

diffuse_ensure_mpi() {
  if command -v mpiexec >/dev/null 2>&1 && diffuse_has_libmpich; then return 0; fi
  diffuse_apt_install "MPI (MPICH: mpiexec and libmpich.so.12)" "the multi-process training tests" mpich
}

# Headless Chromium for the playground's end-to-end tests (tests/Diffuse.Tests/Serving, driven through Selenium and
# Debian's chromedriver). Called by ./test. Installs the distribution's 'chromium' and 'chromium-driver' when missing
# (root only); otherwise says what to run, and those tests are skipped with that reason.
diffuse_ensure_chromium() {
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then return 0; fi
  diffuse_apt_install "headless Chromium (/usr/bin/chromium, /usr/bin/chromedriver)" "the playground's browser tests" chromium chromium-driver
}
