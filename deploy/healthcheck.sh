#!/bin/bash
# Container health check for `glurpc serve` (deploy/Dockerfile installs it as
# /usr/local/bin/glurpc-healthcheck).
#
# Why this and not curl or a subcommand: the binary has no health subcommand, and the
# runtime image (debian:bookworm-slim) has no curl; installing curl would add libcurl and
# its TLS and HTTP/2 libraries (~10 MB) to check one local port. bash is already in the
# image (Debian marks it essential) and its /dev/tcp redirection opens a TCP connection,
# which is all a plain-HTTP GET of the service's own /health needs.
#
# REST on (the default): GET /health on GLURPC_REST_PORT (default 8000) over HTTP/1.0
#   (the server closes after answering); healthy when the status is 200.
# GLURPC_GRPC_ONLY true (REST off): healthy when GLURPC_GRPC_PORT (default 7003) accepts
#   a TCP connection. (Orchestrators that speak gRPC should probe grpc.health.v1 instead,
#   as deploy/k8s/glurpc.yaml does.)
# The ports and mode are read from the environment the server reads: give them as
# GLURPC_* variables, not as command-line flags, when this check is in use.
# Exit 0 healthy, 1 not; at most about 5 seconds (`timeout`).
set -u

is_true() {
    case "${1,,}" in
        true | 1 | yes) return 0 ;;
        *) return 1 ;;
    esac
}

host="${GLURPC_HOST:-127.0.0.1}"
case "$host" in
    0.0.0.0 | "" | :: | "[::]") host=127.0.0.1 ;;
esac

if is_true "${GLURPC_GRPC_ONLY:-false}"; then
    port="${GLURPC_GRPC_PORT:-7003}"
    exec timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
fi

port="${GLURPC_REST_PORT:-8000}"
exec timeout 5 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "GET /health HTTP/1.0\r\nHost: %s\r\nUser-Agent: glurpc-healthcheck\r\n\r\n" "$0" >&3
    IFS= read -r status <&3 || exit 1
    case "$status" in
        "HTTP/1."?" 200 "*) exit 0 ;;
        *) exit 1 ;;
    esac
' "$host" "$port" 2>/dev/null
