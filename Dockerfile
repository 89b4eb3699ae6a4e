# A small static image: musl build, nothing but the binary and CA roots.
FROM rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin ecs-power-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/release/ecs-power-operator /ecs-power-operator
USER 65532:65532
ENTRYPOINT ["/ecs-power-operator"]
CMD ["run"]
