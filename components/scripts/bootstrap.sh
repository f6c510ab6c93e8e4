#!/usr/bin/env bash
# mailstack host bootstrap: make a Debian or DietPi host ready to run docker-mailserver.
#
#   bash -s -- <dataDir> [--no-memory-limit] < bootstrap.sh   (how mailstack runs it over SSH, without a PTY)
#
# Idempotent; safe to re-run. It
#   1. refuses anything but amd64/arm64 userland (DMS publishes no 32-bit ARM image),
#   2. on DietPi, requires finished first-run setup (/boot/dietpi/.install_stage = 2),
#   3. installs Docker when `docker version` fails (DietPi: dietpi-software 162; Debian: docker.io),
#   4. stops when the memory cgroup is off and mailstack sends a memory limit: Docker would discard
#      the limit and every later `pulumi up` would show it as a change (with --no-memory-limit,
#      i.e. target.memoryCgroup false, it only says so),
#   5. creates <dataDir> owned by the SSH user, mode 0700.
# Sources: DietPi's dietpi/dietpi-software (install 162, G_INTERACTIVE, .install_stage) and
# dietpi/func/dietpi-obtain_hw_model; DMS publishes amd64/arm64 images only (docker-mailserver #2642, #3832).
#
# MAILSTACK_BOOTSTRAP_ROOT prefixes the DietPi, /proc and /sys paths read below. It exists only so
# the tests can run this script against a fake root; it is never set on a real host.
set -euo pipefail

ROOT="${MAILSTACK_BOOTSTRAP_ROOT:-}"
DOCKER_WAIT_SECONDS="${MAILSTACK_DOCKER_WAIT_SECONDS:-60}"

log() { printf 'mailstack-bootstrap: %s\n' "$*"; }
warn() { printf 'mailstack-bootstrap: WARNING: %s\n' "$*" >&2; }
die() {
  printf 'mailstack-bootstrap: ERROR: %s\n' "$*" >&2
  exit 1
}

# Root, or passwordless sudo (DietPi's `dietpi` user has NOPASSWD sudo; -n never prompts).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  else
    sudo -n "$@"
  fi
}

# DietPi's Docker unit is Type=simple: the daemon may not answer right after the install.
wait_for_docker() {
  local waited=0
  until as_root docker version >/dev/null 2>&1; do
    if [ "$waited" -ge "$DOCKER_WAIT_SECONDS" ]; then
      return 1
    fi
    sleep 2
    waited=$((waited + 2))
  done
}

check_architecture() {
  local arch
  # dpkg's architecture is the userland's; `uname -m` shows the kernel, and 32-bit DietPi/Raspberry Pi
  # OS images may boot a 64-bit kernel (DietPi dietpi/func/dietpi-set_software, RPi_Kernel_Choice).
  arch="$(dpkg --print-architecture 2>/dev/null)" || die "dpkg not found: mailstack bootstraps Debian-based hosts (Debian, DietPi, Raspberry Pi OS) only; install Docker yourself and set target.bootstrap false"
  case "$arch" in
    amd64 | arm64)
      log "architecture: $arch"
      ;;
    armhf | armel)
      die "32-bit ARM userland ($arch): docker-mailserver publishes only amd64 and arm64 images (ARMv7 was dropped, docker-mailserver#2642). Flash the 64-bit (ARMv8/arm64) DietPi or Raspberry Pi OS image; a Raspberry Pi 3 or newer runs it."
      ;;
    *)
      die "architecture $arch is not supported: docker-mailserver publishes only amd64 and arm64 images"
      ;;
  esac
}

is_dietpi() {
  [ -f "$ROOT/boot/dietpi/.version" ]
}

check_dietpi_setup() {
  local stage
  stage="$(cat "$ROOT/boot/dietpi/.install_stage" 2>/dev/null || echo missing)"
  if [ "$stage" != "2" ]; then
    die "DietPi first-run setup has not finished (/boot/dietpi/.install_stage is '$stage', expected 2). Log in once on the console or with an interactive SSH session and complete it (or preseed AUTO_SETUP_AUTOMATED=1 in dietpi.txt before first boot), then run 'pulumi up' again."
  fi
  log "DietPi first-run setup finished"
}

install_docker() {
  if is_dietpi; then
    log "installing Docker with dietpi-software (ID 162); this takes minutes on a Raspberry Pi"
    # No PTY and G_INTERACTIVE=0: whiptail dialogs answer "no" instead of blocking. Through sudo
    # the variable must go via env(1), not `sudo VAR=…` (sudoers' env_reset refuses that).
    # The exit status is 0 even when the install failed, so it is ignored and Docker is probed.
    as_root env G_INTERACTIVE=0 "$ROOT/boot/dietpi/dietpi-software" install 162 || true
  else
    log "installing Docker from Debian (docker.io)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io
    as_root systemctl enable --now docker
  fi
}

ensure_docker() {
  if as_root docker version >/dev/null 2>&1; then
    log "Docker is installed and running"
  else
    install_docker
    wait_for_docker || die "Docker is still not answering after the install (dietpi-software reports success even when it failed). Run the install on the host and read its output: $(is_dietpi && echo '/boot/dietpi/dietpi-software install 162' || echo 'apt-get install docker.io')"
    log "Docker installed"
  fi
  # The Pulumi docker provider connects as this SSH user (`docker system dial-stdio`).
  if ! docker version >/dev/null 2>&1; then
    die "user '$(id -un)' cannot use Docker. Either connect as root (target.user root) or run 'sudo usermod -aG docker $(id -un)' on the host (docker group membership is root-equivalent; mailstack does not grant it on its own)."
  fi
}

check_memory_cgroup() {
  local limit="$1" v2="$ROOT/sys/fs/cgroup/cgroup.controllers" v1="$ROOT/proc/cgroups"
  local enable="On a Raspberry Pi, DietPi's Docker install adds cgroup_enable=memory to /boot/firmware/cmdline.txt: reboot once. Elsewhere add cgroup_enable=memory to the kernel command line and reboot."
  if [ -r "$v2" ] && grep -qw memory "$v2"; then
    log "memory cgroup: enabled"
  elif [ -r "$v1" ] && awk '$1 == "memory" && $4 == 1 { found = 1 } END { exit !found }' "$v1"; then
    log "memory cgroup: enabled (cgroup v1)"
  elif [ "$limit" = no ]; then
    warn "the memory cgroup is not enabled; no memory limit is set (target.memoryCgroup false). $enable Then: pulumi config set --path 'mailstack:target.memoryCgroup' true"
  else
    # Docker would create the container without the limit ("Limitation discarded", moby
    # daemon/daemon_unix.go verifyPlatformContainerResources) and the provider would read back
    # memory 0: an update on every `pulumi up` that never sticks.
    die "the memory cgroup is not enabled, so Docker would discard the mail container's memory limit (docker info: 'No memory limit support') and every pulumi up would show it as a change. $enable Then run 'pulumi up' again. Or run without a limit: pulumi config set --path 'mailstack:target.memoryCgroup' false"
  fi
}

create_data_dir() {
  local dir="$1"
  as_root install -d -m 0700 -o "$(id -u)" -g "$(id -g)" "$dir"
  log "data directory: $dir"
}

main() {
  local data_dir="${1:?usage: bootstrap.sh <dataDir> [--no-memory-limit]}" limit=yes
  if [ "${2:-}" = --no-memory-limit ]; then
    limit=no
  fi
  case "$data_dir" in
    /*) ;;
    *) die "dataDir must be an absolute path, got '$data_dir'" ;;
  esac
  check_architecture
  if is_dietpi; then
    check_dietpi_setup
  fi
  ensure_docker
  check_memory_cgroup "$limit"
  create_data_dir "$data_dir"
  log "host ready"
}

# Run with stdin from /dev/null: the script itself arrives on stdin (`bash -s`), and apt-get or
# dietpi-software reading stdin would otherwise swallow the rest of it. Everything above is only
# definitions, so bash has read the whole script before this line runs.
main "$@" </dev/null
