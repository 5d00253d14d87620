# Builds the manager (the entrypoint) and the elector as static binaries on a distroless, non-root base.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w" -o . ./cmd/manager ./cmd/elector

FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager /manager
# The elector, for sidecars and for images that run their command under it.
COPY --from=builder /workspace/elector /elector
USER 65532:65532
ENTRYPOINT ["/manager"]
