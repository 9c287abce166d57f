#!/usr/bin/env bash
# Downloads Debian packages (the .deb files only: no dependencies, nothing installed) from any Debian
# suite and architecture into a folder, through a private apt state under that folder. The system's
# sources, lists and installed packages stay as they are, so a bookworm host can take CUDA 12 from
# trixie's non-free or an arm64 Python from bookworm without being turned into another system.
#
# Usage: tools/apt_fetch.sh SUITE ARCH DEST PACKAGE[=VERSION]...
set -euo pipefail

suite=${1:?usage: tools/apt_fetch.sh SUITE ARCH DEST PACKAGE[=VERSION]...}
arch=${2:?usage: tools/apt_fetch.sh SUITE ARCH DEST PACKAGE[=VERSION]...}
dest=${3:?usage: tools/apt_fetch.sh SUITE ARCH DEST PACKAGE[=VERSION]...}
shift 3
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

mkdir -p "$dest"
dest=$(cd "$dest" && pwd)  # apt reads relative Dir:: paths from /, not from here
state="$dest/.apt/$suite-$arch"
mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
echo "deb [arch=$arch signed-by=$keyring] $mirror $suite main contrib non-free" >"$state/sources.list"
apt_options=(
  -o "Dir::Etc::SourceList=$state/sources.list" -o Dir::Etc::SourceParts=/nonexistent
  -o "Dir::State::Lists=$state/lists" -o "Dir::State::Status=$state/status"
  -o "Dir::Cache=$state/cache" -o "APT::Architecture=$arch" -o "APT::Architectures=$arch"
  # apt downloads as _apt, which may not write to a folder under root's home.
  -o APT::Sandbox::User=root -qq
)
touch "$state/status"
# One index download per suite and architecture; delete $state to refresh it.
if ! compgen -G "$state/lists/*_Packages*" >/dev/null; then
  apt-get "${apt_options[@]}" update
fi
cd "$dest"
if ! apt-get "${apt_options[@]}" download "$@"; then
  echo "apt_fetch: could not download $* for $suite/$arch from $mirror" >&2
  exit 1
fi
