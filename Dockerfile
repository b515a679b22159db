# syntax=docker/dockerfile:1
# The one image of every component: `atenciones run --role <name>`, `atenciones migrate`.
# Build (BuildKit): docker build -t atenciones:0.1.0 .

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Crates and compiled dependencies are kept between builds in cache mounts. target/ is
# one of them (not part of the image), so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p atenciones \
    && cp target/release/atenciones /atenciones

# glibc, libgcc, CA certificates and a nonroot user (65532); no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /atenciones /atenciones
USER 65532:65532
ENTRYPOINT ["/atenciones"]
CMD ["run"]
