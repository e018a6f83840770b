#!/usr/bin/env bash
# Installs the tools the Helm chart checks (test/integration/helm-chart.test.ts)
# need, when they are missing or not the pinned version. Idempotent and quiet.
#   helm                 Go module, built into $(go env GOPATH)/bin
#   kubernetes-validate  PyPI; ships the Kubernetes JSON schemas inside the
#                        package, so validation never downloads anything
set -euo pipefail

HELM_MODULE=helm.sh/helm/v3
HELM_VERSION=v3.22.0
KUBERNETES_VALIDATE_VERSION=1.37.0

gobin="$(go env GOPATH)/bin"
# `go install` leaves the version unstamped in `helm version`; the module
# version recorded in the binary is the reliable pin check.
if ! go version -m "$gobin/helm" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+${HELM_MODULE}[[:space:]]+${HELM_VERSION}([[:space:]]|$)"; then
  echo "check-tools: installing helm ${HELM_VERSION} into ${gobin}"
  go install "${HELM_MODULE}/cmd/helm@${HELM_VERSION}"
fi

if ! python3 -c "import sys, kubernetes_validate as k; sys.exit(k.__version__ != '${KUBERNETES_VALIDATE_VERSION}')" 2>/dev/null; then
  echo "check-tools: installing kubernetes-validate ${KUBERNETES_VALIDATE_VERSION}"
  pip install --quiet --disable-pip-version-check --root-user-action=ignore "kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}"
fi
