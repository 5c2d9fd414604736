# One image per service: docker build --build-arg SERVICE=orders -t trellis-orders .
# Stage 1 compiles the service into a single self-contained binary with `deno compile` (migrations embedded);
# stage 2 is a distroless glibc base running as a non-root user. Not exercised on the project's CI machines (no
# Docker engine, and `deno compile` cannot download its runtime there).
ARG DENO_VERSION=2.9.6

FROM denoland/deno:${DENO_VERSION} AS build
ARG SERVICE
WORKDIR /src
COPY deno.json deno.lock* ./
COPY platform/ platform/
COPY services/ services/
COPY proto/gen/ proto/gen/
COPY migrations/ migrations/
RUN test -n "${SERVICE}" || (echo "build with --build-arg SERVICE=<gateway|auth|orders|inventory|payments|notifications>" && exit 1)
RUN deno install --frozen=false \
 && deno compile --allow-net --allow-env --allow-read --allow-write --allow-sys \
      --include migrations --include platform/outbox/migrations --output /out/service "services/${SERVICE}/main.ts"

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/service /app/service
ENV TRELLIS_HOST=0.0.0.0 STORAGE_DIR=/tmp/storage
USER nonroot
ENTRYPOINT ["/app/service"]
