# syntax=docker/dockerfile:1
# One image per function, from one Dockerfile. UNTESTED: no Docker engine was
# available where it was written; the build steps mirror scripts/test's
# Debian packages and the release build that scripts/bench runs.
#
#   docker build --build-arg FUNCTION=slash-command \
#     -t registry.example.internal/coffeebuddy/slash-command:0.1.0 .
#
# FUNCTION: slash-command, interaction, close-run, reminder or admin.

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
# librdkafka is built from source (rdkafka's cmake-build feature).
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev zlib1g-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Every binary at once, like scripts/bench: a whole-workspace build keeps the
# feature set the tests ran with, and this stage is then cached and shared by
# the five images (only the last stage depends on FUNCTION).
# Queries are checked by tests, not at compile time: no database needed here.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --workspace --bins \
 && mkdir /out \
 && for f in slash-command interaction close-run reminder admin; do \
      cp "target/release/coffeebuddy-$f" /out/; \
    done

FROM debian:${DEBIAN}-slim AS runtime
# The binary links libssl, libcrypto and libz dynamically.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/*
ARG FUNCTION
RUN test -n "$FUNCTION" || { echo "set --build-arg FUNCTION=<function>" >&2; exit 1; }
COPY --from=build /out/coffeebuddy-${FUNCTION} /usr/local/bin/function
# A numeric non-root user, so Kubernetes can enforce runAsNonRoot.
USER 65532:65532
ENV LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/function"]
