#!/usr/bin/env bash
# Install what the project needs on a Debian machine: the lab's daemons and tools from apt, and the
# Python tool chain into .venv at the repository root. Safe to re-run: it only installs what is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
log() { printf '[deps %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

APT_PACKAGES=(
  docker-registry skopeo git curl openssl ca-certificates apache2-utils
  bind9 bind9-utils bind9-dnsutils isc-dhcp-server isc-dhcp-client tftpd-hpa tftp-hpa haproxy
  pxelinux syslinux-common ipxe grub-efi-amd64-bin iproute2 procps psmisc default-jdk-headless
  nodejs
  kea-dhcp4-server socat containerd
)

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt: installing ${missing[*]}"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  # The lab runs these daemons itself as plain processes; keep the packages from starting services.
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod 755 "$policy" && created=1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$created" = 1 ] && $sudo rm -f "$policy"
  return 0
}

install_venv() {
  local venv="$root/.venv" stamp="$root/.venv/.requirements.sha256" want
  want=$(cat "$root/requirements.txt" "$root/requirements-dev.txt" | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  log "python: creating .venv and installing requirements"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$root/requirements.txt" -r "$root/requirements-dev.txt"
  echo "$want" >"$stamp"
}


case "${1:-all}" in
  apt) install_apt ;;
  python) install_venv ;;
  all) install_apt; install_venv ;;
esac
