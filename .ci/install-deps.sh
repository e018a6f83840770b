#!/usr/bin/env bash
# Installs what the tests need beyond Node.js, g++ and Python, when missing (idempotent, quiet):
#   etcd-server, etcd-client   a real etcd for the registry and cluster tests
#   clang, libclang-rt-14-dev  the libFuzzer targets (native/fuzz)
#   openssl                    throwaway certificates for the TLS tests
#   annoy 1.17.3, numpy (pip)  the reference for Annoy's format, and the peer in benchmarks
#   moto[server] (pip)         a real S3 API on loopback for the object-storage tests
#   pyarrow, pandas (pip)      Parquet test inputs written the way a Python job writes them
#   grpcio, grpcio-tools, pytest (pip)  the Python client (clients/python), its stubs and its tests
#   helm, kubernetes-validate  the chart checks, offline (helm/check-tools.sh)
#   promtool                   Prometheus's linter for the scrape test (go install; a cold build takes minutes)
#   podman, runc, debootstrap  the container image build and run (.ci/image-test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

need_apt=()
command -v etcd >/dev/null || need_apt+=(etcd-server etcd-client)
command -v clang++ >/dev/null || need_apt+=(clang)
dpkg -s libclang-rt-14-dev >/dev/null 2>&1 || need_apt+=(libclang-rt-14-dev)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v podman >/dev/null || need_apt+=(podman)
command -v runc >/dev/null || need_apt+=(runc)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
python3 -c 'import annoy, numpy' 2>/dev/null || pip install --quiet --disable-pip-version-check annoy==1.17.3 numpy
python3 -c 'import moto.server, flask, pyarrow, pandas, grpc, grpc_tools, pytest' 2>/dev/null ||
  pip install --quiet --disable-pip-version-check 'moto[server]==5.2.1' pyarrow==26.0.1 pandas==3.1.1 grpcio==1.85.3 grpcio-tools==1.85.1 pytest==9.2.0
bash helm/check-tools.sh

# Prometheus publishes its Go module as v0.3xx.y for release v3.xx.y: v0.316.0 is promtool 3.16.
PROMTOOL_MODULE=github.com/prometheus/prometheus
PROMTOOL_VERSION=v0.316.0
gobin="$(go env GOPATH)/bin"
if ! go version -m "$gobin/promtool" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+${PROMTOOL_MODULE}[[:space:]]+${PROMTOOL_VERSION}([[:space:]]|$)"; then
  echo "install-deps: installing promtool ${PROMTOOL_VERSION} into ${gobin}"
  go install "${PROMTOOL_MODULE}/cmd/promtool@${PROMTOOL_VERSION}"
fi
