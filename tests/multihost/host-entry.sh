#!/bin/bash
# Entrypoint of a simulated "EC2 host" (mom-host image): runs its own dockerd.
# Env: DIND_STORAGE (overlay2|fuse-overlayfs|vfs, default overlay2), DIND_EXTRA_ARGS
set -e
# cgroup v1 in a privileged container: /sys/fs/cgroup is already mounted rw by docker.
# Make sure the mount namespace propagation is shared (needed for bind mounts of inner containers).
mount --make-rshared / 2>/dev/null || true
# not --privileged => /sys and the cgroup v1 hierarchies are mounted read-only: remount rw
mount -o remount,rw /sys 2>/dev/null || echo "WARN: cannot remount /sys rw"
for d in /sys/fs/cgroup /sys/fs/cgroup/*; do
  mountpoint -q "$d" && { mount -o remount,bind,rw "$d" 2>/dev/null || echo "WARN: cannot remount $d rw"; }
done
rm -f /var/run/docker.pid /run/docker/containerd/containerd.pid 2>/dev/null || true
STORAGE="${DIND_STORAGE:-overlay2}"
# mutual TLS on 2376 if certs are mounted at /certs (ca.pem, server-cert.pem, server-key.pem), else plain 2375
if [ -f /certs/server-cert.pem ]; then
  TCP_ARGS="--host=tcp://0.0.0.0:2376 --tlsverify --tlscacert=/certs/ca.pem --tlscert=/certs/server-cert.pem --tlskey=/certs/server-key.pem"
else
  TCP_ARGS="--host=tcp://0.0.0.0:2375 --tls=false"
fi
exec dockerd \
  --host=unix:///var/run/docker.sock \
  ${TCP_ARGS} \
  --storage-driver="$STORAGE" \
  --data-root=/var/lib/docker \
  --log-level=info \
  --oom-score-adjust=0 \
  ${DIND_EXTRA_ARGS}
