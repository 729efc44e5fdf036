# syntax=docker/dockerfile:1
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/portal ./cmd/portal

# A static binary on a distroless base, as a non-root user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/portal /portal
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/portal"]
CMD ["serve"]
