# syntax=docker/dockerfile:1
# One image per function, from one Dockerfile. Not built here: no Docker
# engine was available where it was written; tests/deploy checks it
# statically (FUNCTION list vs functions/, USER vs the manifests'
# securityContext, EXPOSE vs containerPort, pinned bases, --locked).
#
#   docker build --build-arg FUNCTION=slash-command \
#     --build-arg RUST_IMAGE=docker.io/library/rust:1.95-bookworm@sha256:<digest> \
#     --build-arg RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim@sha256:<digest> \
#     -t registry.example.internal/coffeebuddy/slash-command:0.1.0 .
#
# FUNCTION: slash-command, interaction, close-run, reminder, admin (the
# Knative functions), local (all of them in one process) or kafka-source
# (the laptop stack's KafkaSource stand-in, tools/kafka-source); the last two
# are for compose.yaml only.
#
# Reproducible: Cargo.lock is used as is (--locked), and both base images
# are build arguments meant to carry a digest. Their defaults below are the
# tags only, because no registry could be reached to read the digests where
# this file was written: for a release, resolve each tag once
# (`docker buildx imagetools inspect docker.io/library/debian:bookworm-slim`
# prints the index digest) and pass `name:tag@sha256:…`, so a rebuild of the
# same commit starts from the same bytes. BuildKit's SOURCE_DATE_EPOCH
# (e.g. the commit time) pins the timestamps as well.
#
# Size target: < 40 MB compressed per image, most of it the
# debian:bookworm-slim base (not measured here; README, "Deployment").
# Debian slim rather than distroless: the compose healthchecks need bash
# (they probe /health/ready through /dev/tcp, no curl in the image).
# Another RUNTIME_IMAGE needs glibc >= 2.36 (the binaries use packed
# relative relocations, scripts/lib/release.env) and the build image's
# glibc no newer than the runtime's.

ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
# librdkafka is built from source (rdkafka's cmake-build feature).
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev zlib1g-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Every binary in this one stage, cached and shared by the seven images (only
# the last stage depends on FUNCTION), built as scripts/lib/release.env says
# (and scripts/bench measures): the five functions as their own packages, then
# the laptop stack's two, with packed relative relocations. The release
# profile (root Cargo.toml) decides optimisation and stripping.
# Queries are checked by tests, not at compile time: no database needed here.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    . scripts/lib/release.env \
 && export RUSTFLAGS="$RELEASE_RUSTFLAGS" \
 && cargo build --release --locked $RELEASE_FUNCTIONS \
 && cargo build --release --locked $RELEASE_TOOLS \
 && mkdir /out \
 && for f in slash-command interaction close-run reminder admin local kafka-source; do \
      cp "target/release/coffeebuddy-$f" /out/; \
    done

FROM ${RUNTIME_IMAGE} AS runtime
# The binary links libssl, libcrypto and libz dynamically.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/*
ARG FUNCTION
RUN test -n "$FUNCTION" || { echo "set --build-arg FUNCTION=<function>" >&2; exit 1; }
COPY --from=build /out/coffeebuddy-${FUNCTION} /usr/local/bin/function
# A numeric non-root user, so Kubernetes can enforce runAsNonRoot; the
# manifests' securityContext names the same runAsUser/runAsGroup. No secret
# is baked in: every setting comes from the environment at run time.
USER 65532:65532
ENV LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/function"]
