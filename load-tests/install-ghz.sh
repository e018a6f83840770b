#!/usr/bin/env bash
# Installs ghz (the gRPC load generator the load tests drive) into
# $(go env GOPATH)/bin when it is missing or not the pinned version. Idempotent.
set -euo pipefail

GHZ_MODULE=github.com/bojand/ghz
GHZ_VERSION=v0.121.0

gobin="$(go env GOPATH)/bin"
# `go install` leaves `ghz --version` as "dev"; the module version in the binary is the pin check.
if ! go version -m "$gobin/ghz" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+${GHZ_MODULE}[[:space:]]+${GHZ_VERSION}([[:space:]]|$)"; then
  echo "install-ghz: installing ghz ${GHZ_VERSION} into ${gobin}" >&2
  go install "${GHZ_MODULE}/cmd/ghz@${GHZ_VERSION}"
fi
echo "$gobin/ghz"
