# Redis from Debian's redis-server package (and redis-cli, for the health check). momctl (and
# compose.yml) pass the full command line (append-only file, fsync policy, data directory), so
# this image only names a sensible default.
FROM mom-base:bookworm
ARG MIRROR=http://deb.debian.org/debian
RUN echo "deb $MIRROR bookworm main" > /etc/apt/sources.list \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/cache/apt/*.bin
VOLUME /data
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data", "--appendonly", "yes"]
