#!/usr/bin/env bash
# Builds the binaries internal/kubetest runs (a real kube-apiserver, etcd,
# kube-controller-manager, KubeVirt's admission webhooks and virt-controller)
# and controller-gen, from the Go module proxy,
# into a cache directory keyed by the Kubernetes version, and prints that
# directory on stdout. Progress goes to stderr.
#
#   hack/kube-tools.sh                 build whatever is missing or stale, print the dir
#   hack/kube-tools.sh TOOL...         only these (kube-apiserver etcd controller-gen kubevirt-webhooks
#                                      kube-controller-manager virt-controller)
#   hack/kube-tools.sh --check [TOOL...]
#                                      build nothing: print the dir, exit 1 naming
#                                      what is missing or stale
#
# The directory is ${PADDOCK_KUBE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/paddock/kube/<k8s-version>}.
# Each binary has a stamp in .stamps/ recording what it was built from (module
# files, sources, versions); a binary whose stamp differs is rebuilt. With all
# of them present and current this takes a few milliseconds.
#
# A cold build of everything takes about 15-20 minutes on 2 cores, most of it
# kube-apiserver, plus the two controllers; see tools/kube/README.md.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kube_mod=$root/tools/kube
wh_mod=$root/tools/kubevirt-webhooks
kcm_mod=$root/tools/kube-controller-manager
vc_mod=$root/tools/virt-controller

controller_tools_version=v0.19.0

k8s_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$kube_mod/go.mod")
if [[ -z $k8s_version ]]; then
	echo "kube-tools: no k8s.io/kubernetes requirement in $kube_mod/go.mod" >&2
	exit 2
fi
kubevirt_version=$(awk '$1 == "kubevirt.io/kubevirt" && $2 ~ /^v/ { print $2; exit }' "$vc_mod/go.mod")
dir=${PADDOCK_KUBE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/paddock/kube/${k8s_version#v}}

check=false
tools=()
for arg in "$@"; do
	case $arg in
	--check) check=true ;;
	kube-apiserver | etcd | controller-gen | kubevirt-webhooks | kube-controller-manager | virt-controller) tools+=("$arg") ;;
	*)
		echo "kube-tools: unknown argument $arg" >&2
		exit 2
		;;
	esac
done
if [[ ${#tools[@]} -eq 0 ]]; then
	tools=(kube-apiserver etcd controller-gen kubevirt-webhooks kube-controller-manager virt-controller)
fi

hash_files() { cat "$@" | sha256sum | cut -d' ' -f1; }

# stamp TOOL prints what TOOL's binary must have been built from.
stamp() {
	case $1 in
	kube-apiserver) echo "k8s.io/kubernetes $k8s_version $(hash_files "$kube_mod/go.mod" "$kube_mod/go.sum")" ;;
	etcd) echo "etcd $(hash_files "$kube_mod/go.mod" "$kube_mod/go.sum" "$kube_mod/cmd/etcd/main.go")" ;;
	controller-gen) echo "sigs.k8s.io/controller-tools $controller_tools_version" ;;
	kubevirt-webhooks)
		local srcs
		mapfile -t srcs < <(cd "$wh_mod" && find . -name '*.go' -not -path './cmd/kubevirt-manifests/*' | LC_ALL=C sort)
		echo "kubevirt-webhooks $(cd "$wh_mod" && hash_files go.mod go.sum "${srcs[@]}")"
		;;
	kube-controller-manager) echo "k8s.io/kubernetes $k8s_version $(hash_files "$kcm_mod/go.mod" "$kcm_mod/go.sum")" ;;
	virt-controller) echo "kubevirt.io/kubevirt $kubevirt_version $(hash_files "$vc_mod/go.mod" "$vc_mod/go.sum")" ;;
	esac
}

current() { [[ -x $dir/$1 && -f $dir/.stamps/$1 && "$(cat "$dir/.stamps/$1")" == "$(stamp "$1")" ]]; }

missing=()
for t in "${tools[@]}"; do
	current "$t" || missing+=("$t")
done

if [[ ${#missing[@]} -eq 0 ]]; then
	echo "$dir"
	exit 0
fi
if $check; then
	echo "$dir"
	echo "kube-tools: missing or stale in $dir: ${missing[*]}; build with hack/kube-tools.sh" >&2
	exit 1
fi

mkdir -p "$dir/.stamps"
trap 'rm -rf "$dir"/.*.tmp.$$ "$dir"/.gobin.$$' EXIT
# One builder at a time (test packages may start in parallel).
exec 9>"$dir/.lock"
flock 9

export CGO_ENABLED=0 GOWORK=off
export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}github.com/rhobs"
ver=${k8s_version#v}
ldflags_k8s="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags_k8s+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=${ver%%.*} -X $pkg.gitMinor=$(cut -d. -f2 <<<"$ver") -X $pkg.gitTreeState=clean"
done
ldflags_kubevirt="-s -w -X kubevirt.io/client-go/version.gitVersion=$kubevirt_version -X kubevirt.io/client-go/version.gitTreeState=clean"

build() {
	set -e
	local t=$1 tmp="$dir/.$1.tmp.$$" start=$SECONDS
	echo "kube-tools: building $t into $dir ..." >&2
	case $t in
	kube-apiserver) (cd "$kube_mod" && go build -trimpath -ldflags "$ldflags_k8s" -o "$tmp" k8s.io/kubernetes/cmd/kube-apiserver) ;;
	etcd) (cd "$kube_mod" && go build -trimpath -ldflags "-s -w" -o "$tmp" ./cmd/etcd) ;;
	controller-gen) (cd "$dir" && GOBIN="$dir/.gobin.$$" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/controller-tools/cmd/controller-gen@$controller_tools_version" && mv "$dir/.gobin.$$/controller-gen" "$tmp" && rmdir "$dir/.gobin.$$") ;;
	kubevirt-webhooks) (cd "$wh_mod" && go build -trimpath -ldflags "-s -w" -o "$tmp" ./cmd/kubevirt-webhooks) ;;
	kube-controller-manager) (cd "$kcm_mod" && go build -trimpath -ldflags "$ldflags_k8s" -o "$tmp" k8s.io/kubernetes/cmd/kube-controller-manager) ;;
	virt-controller) (cd "$vc_mod" && go build -trimpath -ldflags "$ldflags_kubevirt" -o "$tmp" kubevirt.io/kubevirt/cmd/virt-controller) ;;
	esac
	mv -f "$tmp" "$dir/$t"
	stamp "$t" >"$dir/.stamps/$t"
	echo "kube-tools: built $t in $((SECONDS - start))s" >&2
}

# kube-apiserver is the long pole; building the others beside it keeps both
# cores busy through its link steps. Each build's output goes to stderr.
pids=()
for t in "${missing[@]}"; do
	# Another process may have built it while we waited for the lock.
	if ! current "$t"; then
		build "$t" &
		pids+=($!)
	fi
done
failed=0
for pid in "${pids[@]}"; do
	wait "$pid" || failed=1
done
if [[ $failed -ne 0 ]]; then
	echo "kube-tools: a build failed (see above)" >&2
	exit 1
fi
echo "$dir"
