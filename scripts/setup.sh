#!/usr/bin/env bash
# Installs what the lessons and their tests use, only if it is missing:
# iproute2 (ip, bridge), iputils-ping, iptables, conntrack, util-linux
# (unshare, nsenter), kmod (modprobe, lsmod), procps (sysctl), curl; the
# documents' older tools, brctl (bridge-utils) and ifconfig/route
# (net-tools); and what the tests build the same network with to show it
# grades the same: the CNI plugins (bridge, host-local, portmap) and
# busybox (httpd, nc) as a student's own web server; stress and tcpdump,
# which the documents type too; and Consul (scripts/consul.sh).
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
want() { have "$1" || need+=("$2"); }

want ip iproute2
want ping iputils-ping
want iptables iptables
want conntrack conntrack
want nsenter util-linux
want modprobe kmod
want sysctl procps
want curl curl
want brctl bridge-utils
want ifconfig net-tools
want busybox busybox
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/portmap ] || need+=(containernetworking-plugins)
want stress stress
want tcpdump tcpdump

# Go itself: Debian's golang-go is older than the 1.26 go.mod asks for, and
# an old go cannot fetch a newer toolchain, so say what to do instead.
if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    echo "setup: Go is in /usr/local/go/bin but not on PATH: export PATH=\$PATH:/usr/local/go/bin" >&2
  else
    echo "setup: Go 1.26 or newer is needed to build the lab: install it from https://go.dev/dl into /usr/local/go" >&2
  fi
  exit 2
fi

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing ${need[*]}: run 'sudo make setup' (or sudo make lab) to install them" >&2
    exit 2
  fi
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Consul for the consul-overlay lesson: not packaged by Debian, so built
# once from the Go module proxy and cached outside the clone (about 10
# minutes the first time, nothing after). A failed build fails the set-up:
# a lesson that later finds no consul would be a quieter, later surprise.
# LAB_NO_CONSUL=1 skips it; that lesson then refuses at its preflight.
if [ -z "${LAB_NO_CONSUL:-}" ]; then
  "$(dirname "$0")/consul.sh"
fi
