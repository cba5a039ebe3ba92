# Builds the manager and aivmctl: static, no cgo, distroless nonroot.
# The node agent needs cgo (go-nvml) and has its own Dockerfile
# (cmd/node-agent/Dockerfile).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o /out/manager ./cmd/manager \
 && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o /out/aivmctl ./cmd/aivmctl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/manager /out/aivmctl /
USER 65532:65532
ENTRYPOINT ["/manager"]
