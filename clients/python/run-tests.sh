#!/usr/bin/env bash
# Installs the Python client from this checkout and runs its tests against a real local cluster.
# Needs dist/ built (npm run build) and pip grpcio-tools, pytest (.ci/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")"
pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-build-isolation .
python3 -m pytest -q -p no:cacheprovider tests
