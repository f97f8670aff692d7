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
