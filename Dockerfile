# The operator's image for builders with registry access (docker build . / buildah bud .).
# hack/image.sh builds the same layout here without pulling anything: FROM scratch,
#   /ecs-power-operator                   static musl binary, symbols stripped
#   /etc/ssl/certs/ca-certificates.crt    CA roots (for HTTPS to the ECS API)
#   /etc/passwd, /etc/group               from hack/image/rootfs/ (nonroot = 65532)
# user 65532:65532, entrypoint /ecs-power-operator, command run.
# The one difference: here the compiler and CA bundle come from Alpine, there from
# rustup and Debian.
FROM rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev ca-certificates
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin ecs-power-operator

FROM scratch
COPY hack/image/rootfs/ /
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/ecs-power-operator /ecs-power-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/ecs-power-operator"]
CMD ["run"]
