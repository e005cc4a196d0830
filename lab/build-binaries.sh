#!/usr/bin/env bash
# Build the lab's Go binaries once, from the Go module proxy, into a cache outside the repository.
# Re-running is cheap: a binary whose versioned file exists is not rebuilt.
set -euo pipefail

KUBE_VERSION="${LAB_KUBE_VERSION:-v1.36.3}"
ETCD_VERSION="${LAB_ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${LAB_HELM_VERSION:-v4.3.1}"
HELM3_VERSION="${LAB_HELM3_VERSION:-v3.22.0}"
KWOK_VERSION="${LAB_KWOK_VERSION:-v0.8.0}"
# the mirror's peers in benchmarks/bench_mirror_peers.py
CRANE_VERSION="${LAB_CRANE_VERSION:-v0.22.1}"
REGCTL_VERSION="${LAB_REGCTL_VERSION:-v0.11.7}"
# the internal registry: distribution v3 answers the OCI 1.1 referrers API (Debian's 2.8 does not)
DISTRIBUTION_VERSION="${LAB_DISTRIBUTION_VERSION:-v3.1.2}"
# Keycloak from Maven Central (org.keycloak:keycloak-quarkus-dist), checked against this SHA-256
KEYCLOAK_VERSION="${LAB_KEYCLOAK_VERSION:-26.5.6}"
KEYCLOAK_SHA256="${LAB_KEYCLOAK_SHA256:-fa3dd5df90b9ac006712c2f0991be4e8a6cb30ac538e0439ce2f45fc40f4c692}"
MAVEN_CENTRAL="${LAB_MAVEN_CENTRAL:-https://repo1.maven.org/maven2}"

CACHE="${AIRGAP_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airgap-renku-lab}"
BIN="$CACHE/bin"
SRC="$CACHE/src"
mkdir -p "$BIN" "$SRC"
export GOFLAGS="-mod=mod" CGO_ENABLED=0

log() { printf '[lab-build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

have() {  # have NAME VERSION: the cached binary for that version exists
  [ -x "$BIN/$1-$2" ] && ln -sfn "$1-$2" "$BIN/$1"
}

new_module() {  # new_module DIR MODULE-PATH: an empty module with a tools file importing the commands
  rm -rf "$1" && mkdir -p "$1"
  (cd "$1" && go mod init "$2" >/dev/null 2>&1)
}

tools_file() {  # tools_file DIR IMPORT...
  local dir=$1; shift
  { echo '//go:build tools'; echo; echo 'package tools'; echo; echo 'import ('
    for p in "$@"; do echo "	_ \"$p\""; done; echo ')'; } >"$dir/tools.go"
}

build_kubernetes() {
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl) missing=0
  for c in "${cmds[@]}"; do have "$c" "$KUBE_VERSION" || missing=1; done
  [ "$missing" = 0 ] && return 0
  log "building Kubernetes $KUBE_VERSION (${cmds[*]}); cold builds take 10-25 minutes on 2 cores"
  local dir="$SRC/kubernetes" minor staging gomod
  new_module "$dir" lab.local/kubernetes
  minor="${KUBE_VERSION#v1.}"  # 36.3 -> staging modules are v0.36.3
  gomod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  # Every staging module k8s.io/kubernetes replaces with ./staging is published as v0.<minor>.<patch>.
  staging=$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")
  for m in $staging; do (cd "$dir" && go mod edit -replace "$m=$m@v0.$minor"); done
  (cd "$dir" && go mod edit -require "k8s.io/kubernetes@$KUBE_VERSION")
  tools_file "$dir" $(for c in "${cmds[@]}"; do echo "k8s.io/kubernetes/cmd/$c"; done)
  (cd "$dir" && go mod tidy >/dev/null)
  local major=1 kminor=${minor%%.*}
  local ldf="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$kminor"
    ldf+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  for c in "${cmds[@]}"; do
    log "go build $c"
    (cd "$dir" && go build -trimpath -ldflags "$ldf" -o "$BIN/$c-$KUBE_VERSION" "k8s.io/kubernetes/cmd/$c")
    have "$c" "$KUBE_VERSION"
  done
}

build_simple() {  # build_simple NAME VERSION MODULE PACKAGE [LDFLAGS]
  local name=$1 version=$2 module=$3 pkg=$4 ldf=${5:-}
  have "$name" "$version" && return 0
  log "building $name $version from $module"
  local dir="$SRC/$name"
  new_module "$dir" "lab.local/$name"
  (cd "$dir" && go mod edit -require "$module@$version")
  tools_file "$dir" "$pkg"
  (cd "$dir" && go mod tidy >/dev/null && go build -trimpath -ldflags "-s -w $ldf" -o "$BIN/$name-$version" "$pkg")
  have "$name" "$version"
}

build_local() {  # build_local NAME DIR MODULE VERSION: a command of this repository (DIR/main.go) against MODULE
  local name=$1 src=$2 module=$3 version=$4 stamp
  stamp="$version-$(sha256sum "$src/main.go" | cut -c1-12)"  # a changed main.go is built again
  have "$name" "$stamp" && return 0
  log "building $name ($src) against $module $version"
  local dir="$SRC/$name"
  new_module "$dir" "lab.local/$name"
  cp "$src/main.go" "$dir/main.go"
  (cd "$dir" && go mod edit -require "$module@$version" && go mod tidy >/dev/null \
    && go build -trimpath -ldflags "-s -w" -o "$BIN/$name-$stamp" .)
  have "$name" "$stamp"
}

fetch_keycloak() {  # the distribution, unpacked into $CACHE/keycloak-<version> (lab/components/keycloak.py runs it)
  local dest="$CACHE/keycloak-$KEYCLOAK_VERSION" tarball="$CACHE/keycloak-quarkus-dist-$KEYCLOAK_VERSION.tar.gz"
  [ -x "$dest/bin/kc.sh" ] && return 0
  local url="$MAVEN_CENTRAL/org/keycloak/keycloak-quarkus-dist/$KEYCLOAK_VERSION/keycloak-quarkus-dist-$KEYCLOAK_VERSION.tar.gz"
  if ! echo "$KEYCLOAK_SHA256  $tarball" | sha256sum -c --status 2>/dev/null; then
    log "downloading Keycloak $KEYCLOAK_VERSION from Maven Central"
    curl -fsSL --retry 3 -o "$tarball.part" "$url" || {
      echo "lab-build: downloading Keycloak failed: $url (set LAB_MAVEN_CENTRAL to a reachable Maven repository)" >&2
      exit 1; }
    echo "$KEYCLOAK_SHA256  $tarball.part" | sha256sum -c --status || {
      echo "lab-build: $url does not have the expected SHA-256 $KEYCLOAK_SHA256" >&2; rm -f "$tarball.part"; exit 1; }
    mv "$tarball.part" "$tarball"
  fi
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  tar -xzf "$tarball" -C "$dest.tmp" --strip-components=1
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
}

main() {
  fetch_keycloak
  command -v go >/dev/null || { echo "go is required to build the lab binaries" >&2; exit 1; }
  build_simple etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3
  build_simple helm "$HELM_VERSION" helm.sh/helm/v4 helm.sh/helm/v4/cmd/helm \
    "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
  build_kubernetes
  build_simple helm3 "$HELM3_VERSION" helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm \
    "-X helm.sh/helm/v3/internal/version.version=$HELM3_VERSION"
  build_simple kwok "$KWOK_VERSION" sigs.k8s.io/kwok sigs.k8s.io/kwok/cmd/kwok \
    "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
  build_simple crane "$CRANE_VERSION" github.com/google/go-containerregistry \
    github.com/google/go-containerregistry/cmd/crane
  build_simple regctl "$REGCTL_VERSION" github.com/regclient/regclient github.com/regclient/regclient/cmd/regctl \
    "-X github.com/regclient/regclient/internal/version.vcsTag=$REGCTL_VERSION"
  build_simple registry "$DISTRIBUTION_VERSION" github.com/distribution/distribution/v3 \
    github.com/distribution/distribution/v3/cmd/registry \
    "-X github.com/distribution/distribution/v3/version.version=$DISTRIBUTION_VERSION"
  # distribution does not serve the referrers API: tests that need a registry with it start this one
  build_local referrers-registry "$(dirname "$0")/referrers-registry" github.com/google/go-containerregistry \
    "$CRANE_VERSION"
  log "binaries ready in $BIN"
}
main "$@"
