# syntax=docker/dockerfile:1
# Dockerfile: stampd as a container image, multi-stage on Debian 12.
#
#   docker build -t stampd .
#   docker run -d --name stampd -p 10027:10027 -p 9464:9464 \
#     -v /etc/stampd:/etc/stampd:ro stampd
#
# The builder runs deploy/build.sh, the very script CI (tests/run.sh) and the
# README use, so the image holds the binary the test suite tested. The final
# stage has only the runtime libraries, runs as the unprivileged user stampd
# (uid 10027), and reads its config and keys from /etc/stampd (mount them;
# deploy/docker/stampd.toml is a starting point). Key files must be readable
# by uid 10027: mode 0600 owned by 10027, or group-readable with
# [dkim] allow_group_readable_keys = true.

FROM debian:bookworm AS build
WORKDIR /src
# The build packages first, in a layer of their own: a change to the sources
# does not download them again.
COPY deploy/install-deps.sh deploy/
RUN deploy/install-deps.sh --build-only
COPY . .
# Same script, same configuration as CI; only the stampd target is needed here.
RUN deploy/build.sh build Release stampd \
 && build/stampd --version

FROM debian:bookworm-slim
# The shared libraries build/stampd links (readelf -d: NEEDED), by package;
# ca-certificates for verifying the upstream's certificate.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libssl3 libunbound8 libtomlplusplus3 libprometheus-cpp-core1.0 libstdc++6 libcrypt1 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10027 stampd \
 && useradd --system --uid 10027 --gid stampd --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin stampd \
 && mkdir -p /etc/stampd
COPY --from=build /src/build/stampd /usr/local/bin/stampd
COPY deploy/docker/stampd.toml /etc/stampd/stampd.toml
USER stampd:stampd
# SMTP (apps, Postfix) and Prometheus (/metrics /healthz /readyz).
EXPOSE 10027 9464
# Alive = /healthz answers 200 where the config's [metrics] listen says
# (0.0.0.0 is asked on loopback). Same config file as CMD: run with another
# -c FILE, give --health-cmd the same FILE. "health --ready" asks /readyz
# (upstream reachable, keys usable, not draining) for a compose depends_on.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/stampd", "health", "-c", "/etc/stampd/stampd.toml"]
# SIGTERM drains (new connections get 421, messages in flight finish);
# give "docker stop -t" more than [server] drain_timeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/stampd"]
CMD ["run", "-c", "/etc/stampd/stampd.toml"]
