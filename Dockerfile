# airlock's container image: one static binary on an empty base, run as a
# non-root user, with nothing to write in the image (run it with a
# read-only root filesystem; /tmp and any local state are volumes).
#
# It copies what `make image` prepares in build/image (the binary built
# with CGO_ENABLED=0, as the SQLite driver is pure Go, and the host's CA
# bundle for S3 and webhooks over TLS), so that it builds offline, without
# pulling a base image:
#   make image            # podman or buildah; IMAGE=airlock:dev by default
FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY passwd group /etc/
COPY airlock /airlock
USER 65532:65532
# SFTP, and HTTP (health, readiness, metrics).
EXPOSE 2222 8080
ENTRYPOINT ["/airlock"]
CMD ["serve", "--config", "/etc/airlock/config/airlock.yaml"]
