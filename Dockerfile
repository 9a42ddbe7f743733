# The Boxoffice image: the one `boxoffice` binary. Every service runs from it as
# `boxoffice serve <service>` (see deploy/k8s and docs/deployment.md).
#   docker build -t boxoffice:0.1.0 .
#   docker run --rm boxoffice:0.1.0 serve --help
#
# Dependency caching: cargo-chef. The workspace has 13 members (services, libs, fakes, bench, the
# binary), each would need its manifest copied and a stub source kept in step with this file for
# the copy-manifests-and-stub-sources trick; cargo-chef derives the dependency-only build (the
# "recipe") from the manifests and Cargo.lock itself, so the layer that compiles the dependencies
# (librdkafka among them, minutes on a small builder) is rebuilt only when they change.

# Matches rust-toolchain.toml (scripts/validate-manifests.sh checks it). The toolchain file itself
# is left out of the context (.dockerignore) so rustup does not fetch rustfmt and clippy here.
ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# The bookworm image has what the build needs: a C toolchain and make (the bundled librdkafka),
# pkg-config, zlib and OpenSSL headers.
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --package boxoffice --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --package boxoffice \
    && install -m 0755 target/release/boxoffice /usr/local/bin/boxoffice

FROM debian:bookworm-slim AS runtime
# At run time the binary needs glibc, libgcc and zlib (in the base image), OpenSSL's libssl3
# (outgoing HTTPS: OAuth providers, the PG, the SMS provider; librdkafka is linked in statically
# without TLS) and the CA certificates. Nothing else: PostgreSQL, Redis and Kafka are servers of
# their own in distributed mode.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /usr/local/bin/boxoffice /usr/local/bin/boxoffice
# A numeric non-root user, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001
# Every service's port (http.port, set by the manifests) and the gateway's ops listener.
EXPOSE 8080 9090
ENTRYPOINT ["boxoffice"]
CMD ["--help"]
