#!/usr/bin/env bash
# helm, kubeconform and the JSON schemas kubeconform checks the chart against, built and
# generated once into a cache outside the work tree (a second run is a few file checks).
#
#   scripts/k8s-tools.sh            prints the tool directory on its last line
#
# Everything comes from the Go module proxy at pinned versions: helm and kubeconform with
# `go install`; the Kubernetes OpenAPI spec from the k8s.io/kubernetes module; the KEDA and
# prometheus-operator CRDs from the kedacore/keda/v2 and prometheus-operator modules.
set -euo pipefail

HELM_VERSION=v3.21.4
KUBECONFORM_VERSION=v0.7.0
KUBERNETES_VERSION=v1.35.4
KEDA_VERSION=v2.20.2
PROMETHEUS_OPERATOR_VERSION=v0.85.0

here="$(cd "$(dirname "$0")" && pwd)"
tools="${HOOKSTREAM_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hookstream/tools}"
stamp="$tools/.versions-$HELM_VERSION-$KUBECONFORM_VERSION-$KUBERNETES_VERSION-$KEDA_VERSION-$PROMETHEUS_OPERATOR_VERSION"
python="${PYTHON:-python3}"  # with PyYAML (the venv's python)

if [ -f "$stamp" ] && [ -x "$tools/bin/helm" ] && [ -x "$tools/bin/kubeconform" ]; then
  echo "$tools"
  exit 0
fi
command -v go >/dev/null || { echo "go is needed to build helm and kubeconform" >&2; exit 2; }
mkdir -p "$tools/bin" "$tools/schemas"
# GOTOOLCHAIN=auto: an older Go (>= 1.21) fetches the toolchain helm requires, as a module
export GOBIN="$tools/bin" GOFLAGS="-modcacherw" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"

go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" >&2

module_dir() {  # the unpacked module in the module cache
  go mod download -json "$1@$2" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'
}
k8s="$(module_dir k8s.io/kubernetes "$KUBERNETES_VERSION")"
keda="$(module_dir github.com/kedacore/keda/v2 "$KEDA_VERSION")"
promop="$(module_dir github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION")"

rm -rf "$tools/schemas" && mkdir -p "$tools/schemas"
"$python" "$here/k8s_schemas.py" "$tools/schemas" \
  --openapi "$k8s/api/openapi-spec/swagger.json" \
  --crds "$keda/config/crd/bases" "$promop/example/prometheus-operator-crd"
rm -f "$tools"/.versions-* && touch "$stamp"
echo "$tools"
