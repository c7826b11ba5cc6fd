#!/usr/bin/env bash
# Makes a Consul for the consul-overlay lesson available, only if it is
# missing: a `consul` already on PATH is used when it is an open-source
# release (< 1.17; 1.17 and later are under the BSL), else Consul 1.15.4, the
# version the documents use and the last MPL-2.0 line, is built once from the
# Go module proxy into $LAB_CACHE_DIR/consul (default /var/cache/lab/consul)
# and reused. LAB_CONSUL=PATH names one explicitly. The lab looks for it in
# the same order (primitives/consul).
#
# The trap in building it: the module zip of github.com/hashicorp/consul
# leaves out its nested modules (api, sdk, ...), so its go.mod `replace
# (... => ./api ...)` points at nothing. Dropping the replaces makes Go use
# the published modules, and the published api v1.21.0 and v1.22.0 lack
# symbols 1.15.4 uses; api v1.25.1 has them.
set -euo pipefail

VERSION=1.15.4
API=v1.25.1
# Pinned: the releases of these two that came with 1.17+ are not open source.
ENVOYEXT=v0.2.1
TROUBLESHOOT=v0.2.0
COMMIT=c3f767b1146f4e394dc147f6d9438f02b7039928 # tag v1.15.4
BUILD_DATE=2023-06-23T23:14:17Z                  # its commit time (the proxy's .info), as upstream stamps it

CACHE="${LAB_CACHE_DIR:-/var/cache/lab}/consul"
BIN="$CACHE/bin/consul"
LINK="${LAB_CONSUL_LINK:-/usr/local/bin/consul}"

say() { echo "consul: $*"; }
die() { echo "consul: $*" >&2; exit 1; }

# ok BINARY: prints its version and succeeds when it is open source (< 1.17).
ok() {
  local v major minor
  v=$("$1" version 2>/dev/null | sed -n '1s/^Consul v\([0-9][0-9.]*\).*/\1/p') || true
  [ -n "$v" ] || return 2
  echo "$v"
  major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
  [ "$major" -eq 1 ] && [ "$minor" -lt 17 ]
}

# link: a `consul` on PATH for the commands the lesson prints, never
# replacing one that is already there.
link() {
  if [ -e "$LINK" ] || [ -L "$LINK" ]; then return 0; fi
  if ln -s "$BIN" "$LINK" 2>/dev/null; then
    say "linked $LINK -> $BIN"
  else
    say "note: could not link $LINK (not root?); the lab finds $BIN by itself"
  fi
}

# An explicit LAB_CONSUL wins, as it does in the lab.
if [ -n "${LAB_CONSUL:-}" ]; then
  v=$(ok "$LAB_CONSUL") && { say "using LAB_CONSUL=$LAB_CONSUL (v$v)"; exit 0; }
  die "LAB_CONSUL=$LAB_CONSUL is ${v:+v$v, }not an open-source Consul below 1.17: unset it or point it at one"
fi

if onpath=$(command -v consul 2>/dev/null); then
  if v=$(ok "$onpath"); then
    say "using $onpath (v$v)"
    exit 0
  fi
  [ -n "${v:-}" ] && die "$onpath is v$v, which is not open source (1.17+): remove it from PATH, then run scripts/consul.sh again to build v$VERSION"
  die "$onpath does not answer 'consul version': remove it from PATH, then run scripts/consul.sh again"
fi

if [ -x "$BIN" ] && v=$(ok "$BIN"); then
  say "using $BIN (v$v)"
  link
  exit 0
fi

if ! mkdir -p "$CACHE/bin" 2>/dev/null || [ ! -w "$CACHE" ]; then
  die "cannot write $CACHE: run 'sudo scripts/consul.sh' (or sudo make setup), or set LAB_CACHE_DIR to a writable directory"
fi
# sudo's PATH often lacks the Go that https://go.dev/dl installs.
command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null 2>&1 || die "Go is needed to build Consul: install Go 1.26 from https://go.dev/dl into /usr/local/go and put it on PATH"

# One build at a time; a second caller waits, then finds the binary.
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
  say "another build is running; waiting for it"
  flock 9
fi
if [ -x "$BIN" ] && v=$(ok "$BIN"); then
  say "using $BIN (v$v)"
  link
  exit 0
fi

export GOFLAGS="-mod=mod -buildvcs=false" GOWORK=off CGO_ENABLED=0
work=$(mktemp -d "${TMPDIR:-/tmp}/lab-consul-build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

say "Consul v$VERSION is not installed: building it from the Go module proxy into $CACHE"
say "a first build takes about 10 minutes on 2 idle cores, more on a busy machine; later runs reuse the binary"
say "[1/3] fetching github.com/hashicorp/consul@v$VERSION"
# -json reports a failure in its "Error" field, on stdout.
json=$(go mod download -json "github.com/hashicorp/consul@v$VERSION" 2>&1) || true
dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")
if [ -z "$dir" ] || [ ! -f "$dir/go.mod" ]; then
  why=$(sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p' <<<"$json" | head -n1)
  die "could not fetch github.com/hashicorp/consul@v$VERSION through GOPROXY=$(go env GOPROXY): ${why:-$(tail -n1 <<<"$json")}"
fi
cp -R "$dir" "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"

say "[2/3] pointing its go.mod at the published api $API (dropping the replaces)"
for m in api envoyextensions proto-public sdk troubleshoot; do
  go mod edit -dropreplace="github.com/hashicorp/consul/$m"
done
go mod edit -require="github.com/hashicorp/consul/api@$API" \
  -require="github.com/hashicorp/consul/envoyextensions@$ENVOYEXT" \
  -require="github.com/hashicorp/consul/troubleshoot@$TROUBLESHOOT"

say "[3/3] compiling (go build; a line every 30 seconds)"
start=$SECONDS
go build -trimpath -o "$work/consul" \
  -ldflags "-s -w -X github.com/hashicorp/consul/version.GitCommit=${COMMIT:0:8} -X github.com/hashicorp/consul/version.BuildDate=$BUILD_DATE" \
  . >"$work/build.log" 2>&1 &
pid=$!
next=30
while kill -0 "$pid" 2>/dev/null; do
  sleep 2
  if [ $((SECONDS - start)) -ge $next ] && kill -0 "$pid" 2>/dev/null; then
    say "  still compiling: $((SECONDS - start))s"
    next=$((next + 30))
  fi
done
if ! wait "$pid"; then
  tail -n 40 "$work/build.log" >&2
  die "building v$VERSION failed (the end of its log is above)"
fi

# The modules the binary really links, checked against the licence line.
for pair in "envoyextensions $ENVOYEXT" "troubleshoot $TROUBLESHOOT"; do
  set -- $pair
  got=$(go list -m -f '{{.Version}}' "github.com/hashicorp/consul/$1")
  [ "$got" = "$2" ] || die "the build resolved github.com/hashicorp/consul/$1 $got, not the MPL-2.0 $2: not installing it"
done
v=$(ok "$work/consul") || true
[ "$v" = "$VERSION" ] || die "the built binary reports '${v:-no version}', not v$VERSION: not installing it"

install -m 0755 "$work/consul" "$CACHE/consul-$VERSION"
ln -sfn "../consul-$VERSION" "$BIN.tmp" && mv -T "$BIN.tmp" "$BIN"
say "built v$v in $((SECONDS - start))s: $BIN"
link
