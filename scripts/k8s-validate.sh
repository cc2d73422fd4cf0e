#!/usr/bin/env bash
# Renders the Kubernetes manifests offline (`kubectl kustomize`) and checks every object against
# the Kubernetes API schemas (kubernetes-validate, strict: unknown fields fail). The deploy
# overlay needs secrets/ (never committed); the example files stand in for them here.
# scripts/setup.sh installs both tools.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBECTL=$(command -v kubectl || echo .tools/k8s/bin/kubectl)
VALIDATE=.tools/k8s/bin/kubernetes-validate
K8S_VERSION=${K8S_VERSION:-1.33.0}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r docker/k8s "$tmp/k8s"
rm -rf "$tmp/k8s/deploy/secrets"
cp -r docker/k8s/deploy/secrets.example "$tmp/k8s/deploy/secrets"

for dir in base deploy observability; do
  "$KUBECTL" kustomize "$tmp/k8s/$dir" >"$tmp/$dir.yaml"
  # One document per file: kubernetes-validate reports each by file name.
  mkdir -p "$tmp/$dir"
  awk -v d="$tmp/$dir" 'BEGIN { n = 0; f = d "/0.yaml" } /^---$/ { n++; f = d "/" n ".yaml"; next } { print > f }' "$tmp/$dir.yaml"
  count=$(ls "$tmp/$dir" | wc -l)
  "$VALIDATE" --strict --quiet -k "$K8S_VERSION" "$tmp/$dir"/*.yaml
  echo "k8s-validate: docker/k8s/$dir: $count objects render and validate (Kubernetes $K8S_VERSION, strict)"
done
# The things a reviewer would look for first.
grep -q 'kind: HorizontalPodAutoscaler' "$tmp/deploy.yaml"
grep -q 'kind: PodDisruptionBudget' "$tmp/deploy.yaml"
grep -q 'kind: NetworkPolicy' "$tmp/deploy.yaml"
if grep -q 'CHANGE-ME' docker/k8s/base/*.yaml; then echo "k8s-validate: a secret in base/" >&2; exit 1; fi
# The example alert rules: a Prometheus rules file (no promtool here), each rule complete.
.tools/k8s/bin/python - docker/k8s/observability/tessera-alerts.yaml <<'PY'
import sys, yaml
groups = yaml.safe_load(open(sys.argv[1]))["groups"]
rules = [r for g in groups for r in g["rules"]]
for r in rules:
    missing = {"alert", "expr", "labels", "annotations"} - r.keys()
    assert not missing, f"{r.get('alert')}: missing {missing}"
    assert r["labels"].get("severity") in {"critical", "warning", "info"}, r["alert"]
    assert r["annotations"].get("summary"), r["alert"]
assert len({r["alert"] for r in rules}) == len(rules), "an alert name twice"
print(f"k8s-validate: docker/k8s/observability/tessera-alerts.yaml: {len(rules)} rules, each complete")
PY
