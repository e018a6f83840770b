# The Canopy image: `canopy` on Node.js 20, run as an unprivileged user under tini.
#
#   podman build -t canopy:0.1.0 .                       # on the official Node 20 slim image
#   podman build -t canopy:0.1.0 --build-arg BASE=IMAGE . # on any Debian-based Node 20 image that
#                                                         # ships node, npm and Node's C headers
#
# The build stage compiles the native addon and the TypeScript, then drops the dev dependencies; the
# runtime stage copies only the result, so no compiler, header or dev package reaches it.
ARG BASE=docker.io/library/node:20-bookworm-slim

FROM ${BASE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/canopy
COPY package.json package-lock.json binding.gyp tsconfig.json ./
COPY native/src native/src
COPY native/binding native/binding
COPY src src
COPY proto proto
COPY bin bin
# Where the npm registry is reached through a TLS-inspecting proxy, mount its CA bundle into the build
# and name it here; empty means Node's own CA list.
ARG NPM_CONFIG_CAFILE=""
# node-gyp compiles against the running Node's own headers (PREFIX/include/node: /usr/local in the
# official image, /usr with Debian's libnode-dev), so the build fetches nothing but npm packages.
RUN npm_config_nodedir="$(node -p "require('node:path').resolve(process.execPath, '..', '..')")" \
    npm ci --no-audit --no-fund \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf build/Release/obj.target build/Release/.deps

FROM ${BASE}
ARG BASE
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="canopy" \
      org.opencontainers.image.description="Approximate nearest neighbour search served as a sharded gRPC cluster, on Annoy-compatible mmap'd forests" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE}"
# tini as PID 1 forwards SIGTERM to canopy (which drains) and reaps any zombie.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 canopy \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home canopy
WORKDIR /opt/canopy
COPY --from=build /opt/canopy/package.json ./
COPY --from=build /opt/canopy/bin bin
COPY --from=build /opt/canopy/proto proto
COPY --from=build /opt/canopy/dist dist
COPY --from=build /opt/canopy/build/Release/canopy.node build/Release/canopy.node
COPY --from=build /opt/canopy/node_modules node_modules
RUN ln -s /opt/canopy/bin/canopy.js /usr/local/bin/canopy
# The chart's podSecurityContext runs as the same uid and gid.
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/canopy"]
CMD ["--help"]
