# Redis from Debian's redis-server package. momctl (and compose.yml) pass the full command line
# (append-only file, fsync policy, data directory), so this image only names a sensible default.
FROM mom-base:bookworm
VOLUME /data
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data", "--appendonly", "yes"]
