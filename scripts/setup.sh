#!/usr/bin/env bash
# Sets up a fresh Debian 12 (or Ubuntu 22.04+) machine to build, run and test derain: the
# GStreamer 1.22 development packages and plugins (element, `derain video`, example pipelines),
# pkg-config, a C++ compiler (the CUDA-kernel emulation tests) and, when missing, Rust stable
# through rustup. Installs only what is missing; runs again in a second. Used by the README's
# first command and by .ci/run.
set -euo pipefail

pkgs=(pkg-config g++ libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
      gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
      gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-plugins-base-apps
      gstreamer1.0-rtsp libgstrtspserver-1.0-dev)
missing=()
for p in "${pkgs[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) || true
  [[ $st == *"install ok installed"* ]] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: run as root (apt-get install ${missing[*]})" >&2; exit 1; }
    sudo=(sudo)
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  if command -v curl >/dev/null 2>&1; then
    echo "setup: installing Rust stable with rustup"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null
    echo "setup: open a new shell (or run: source \$HOME/.cargo/env) so that cargo is on PATH"
  else
    echo "setup: Rust stable (cargo) is required: https://rustup.rs" >&2
    exit 1
  fi
fi
echo "setup: ready ($(pkg-config --modversion gstreamer-1.0 2>/dev/null || echo '?') GStreamer)"
