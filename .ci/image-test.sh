#!/usr/bin/env bash
# Builds the container image and runs a cluster from it. No image registry is needed:
#   1. a Node 20 base image from Debian packages: debootstrap trixie minbase with nodejs, `podman
#      import`, then npm and libnode-dev on top (with the Dockerfile's use of the official node image
#      in mind: node, npm and Node's C headers; debootstrap cannot configure npm itself);
#   2. the Dockerfile on that base (--build-arg BASE=...);
#   3. etcd on the host; an index built by the image into a mounted folder, published, served by two
#      shard containers and a router container on the host network; one exact query through the
#      containerised router must return the item whose vector it sent, at distance 0.
# Nothing is cached between runs. Needs root, podman, runc, debootstrap, etcd and python3 with numpy.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="$(node -p "require('./package.json').version")"
IMAGE="localhost/canopy:${VERSION}"
BASE_IMAGE="localhost/canopy-ci-node20:trixie"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

work="$(mktemp -d /tmp/canopy-image-test.XXXXXX)"
names=()
etcd_pid=""
cleanup() {
  for name in "${names[@]}"; do podman rm -f -t 5 "$name" >/dev/null 2>&1 || true; done
  if [ -n "$etcd_pid" ]; then kill "$etcd_pid" 2>/dev/null || true; wait "$etcd_pid" 2>/dev/null || true; fi
  # debootstrap mounts proc in the new root; never delete through a live mount.
  if mountpoint -q "$work/rootfs/proc" 2>/dev/null; then umount "$work/rootfs/proc"; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Podman's defaults fail on this kind of host (crun cannot set RLIMIT_NOFILE; hybrid cgroups): no
# default ulimits, and runc as the runtime.
printf '[containers]\ndefault_ulimits = []\n' > "$work/containers.conf"
export CONTAINERS_CONF="$work/containers.conf"
podman() { command podman --runtime runc "$@"; }

step() { echo "image-test: [${SECONDS}s] $*"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

step "debootstrap trixie with nodejs, then npm and libnode-dev: $BASE_IMAGE"
debootstrap --variant=minbase --include=nodejs trixie "$work/rootfs" "$MIRROR" > "$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log"; exit 1; }
if mountpoint -q "$work/rootfs/proc"; then umount "$work/rootfs/proc"; fi
tar -C "$work/rootfs" -c . | podman import --quiet - "$BASE_IMAGE-minbase" >/dev/null
rm -rf "$work/rootfs"
printf '%s\n' "FROM $BASE_IMAGE-minbase" \
  'RUN apt-get update && apt-get install -y --no-install-recommends npm libnode-dev && rm -rf /var/lib/apt/lists/*' \
  > "$work/Containerfile.base"
podman build --network=host -t "$BASE_IMAGE" -f "$work/Containerfile.base" "$work" > "$work/base.log" 2>&1 \
  || { tail -20 "$work/base.log"; exit 1; }

# The npm registry may be reached through a TLS-inspecting proxy whose CA the host trusts: lend the
# build that CA bundle (a build-time mount; it stays out of the image).
ca_args=()
cafile="$(npm config get cafile 2>/dev/null || true)"
if [ -n "$cafile" ] && [ "$cafile" != null ] && [ -f "$cafile" ]; then
  ca_args=(-v "$cafile:/run/canopy-build/ca.crt:ro" --build-arg NPM_CONFIG_CAFILE=/run/canopy-build/ca.crt)
fi
step "podman build $IMAGE on $BASE_IMAGE"
podman build --network=host "${ca_args[@]}" --build-arg BASE="$BASE_IMAGE" --build-arg VERSION="$VERSION" \
  -t "$IMAGE" . > "$work/build.log" 2>&1 || { tail -40 "$work/build.log"; exit 1; }

step "the image runs canopy as uid 10001, without a compiler"
[ "$(podman run --rm "$IMAGE" --version)" = "$VERSION" ]
podman run --rm --entrypoint sh "$IMAGE" -c '[ "$(id -u)" = 10001 ] && ! command -v cc gcc g++ c++ make'

step "a cluster from the image: etcd on the host, two shards and a router in containers"
etcd_port="$(free_port)"; peer_port="$(free_port)"; router_port="$(free_port)"
shard_ports=("$(free_port)" "$(free_port)")
etcd_url="http://127.0.0.1:$etcd_port"
etcd --name image-test --data-dir "$work/etcd" --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "image-test=http://127.0.0.1:$peer_port" > "$work/etcd.log" 2>&1 &
etcd_pid=$!

# 2,000 items of 16 dimensions; the query is item-1234's own vector.
mkdir -p "$work/data"
python3 - "$work/data/items.jsonl" "$work/query.json" <<'EOF'
import json, sys
import numpy as np
vectors = np.random.default_rng(7).standard_normal((2000, 16)).astype(np.float32)
with open(sys.argv[1], 'w') as out:
    for i, v in enumerate(vectors):
        out.write(json.dumps({'id': f'item-{i}', 'vector': [float(x) for x in v]}) + '\n')
with open(sys.argv[2], 'w') as out:
    json.dump([float(x) for x in vectors[1234]], out)
EOF
chown -R 10001:10001 "$work/data"
podman run --rm --network=host -v "$work/data:/data" "$IMAGE" build --input /data/items.jsonl --format jsonl \
  --metric euclidean --trees 10 --shards 2 --index items --version v1 --out /data/items > "$work/build-index.log"

run_node() { # name, canopy arguments...
  local name="canopy-image-test-$1-$$"; shift
  names+=("$name")
  podman run -d --name "$name" --network=host -v "$work/data:/data:ro" "$IMAGE" "$@" >/dev/null
}
# Containers on the host network share the host's name, and each canopy runs in its own PID
# namespace, at the same small PID: the default node id (<hostname>-<pid>) would be the same for both.
for shard in 0 1; do
  run_node "shard$shard" serve shard --etcd "$etcd_url" --index items --shard "$shard" \
    --listen "127.0.0.1:${shard_ports[$shard]}" --node-id "image-test-shard-$shard"
done
run_node router serve router --etcd "$etcd_url" --listen "127.0.0.1:$router_port"
podman run --rm --network=host -v "$work/data:/data:ro" "$IMAGE" publish --etcd "$etcd_url" --manifest /data/items/v1 > /dev/null

step "tini is PID 1 and canopy its child"
[ "$(podman exec "${names[0]}" cat /proc/1/comm)" = tini ]

step "one exact query through the containerised router"
for attempt in $(seq 1 60); do
  if podman run --rm --network=host "$IMAGE" query --target "127.0.0.1:$router_port" --index items \
       --vector "$(cat "$work/query.json")" --k 1 > "$work/answer.json" 2> "$work/query.err"; then
    break
  fi
  [ "$attempt" -lt 60 ] || { cat "$work/query.err"; for n in "${names[@]}"; do podman logs --tail 20 "$n"; done; exit 1; }
  sleep 1
done
python3 - "$work/answer.json" <<'EOF'
import json, sys
answer = json.load(open(sys.argv[1]))
first = answer['neighbors'][0]
assert first['id'] == 'item-1234' and first['distance'] == 0 and answer['indexVersion'] == 'v1', f'unexpected answer: {answer}'
print(f"image-test: ok, {first['id']} at distance {first['distance']} from version {answer['indexVersion']}")
EOF
