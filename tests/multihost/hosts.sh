#!/bin/bash
# Simulate N "EC2 hosts" as privileged Docker-in-Docker containers, each with its own dockerd
# reachable over TCP from this machine. Everything is named mom-host-*.
#
#   ./hosts.sh image   # debootstrap rootfs + docker import -> mom-host:latest (skipped if it exists)
#   ./hosts.sh up      # image (if missing) + outer net mom-hosts + N dind hosts, waits for each dockerd;
#                      # with SWARM=1 also a swarm and the attachable overlay mom-host-ovl.
#                      # Idempotent: hosts already running are kept (a few seconds).
#   ./hosts.sh addrs   # the hosts' Docker endpoints, comma-separated, alone on stdout:
#                      # tcp://172.31.77.11:2375,tcp://172.31.77.12:2375,... (TLS=1: https://...:2376)
#   ./hosts.sh test    # implies SWARM=1: up with swarm + overlay, then load the host image into each
#                      # engine, run redis on each host, ping/TCP across hosts
#   ./hosts.sh down    # remove containers, outer network, volumes (and so any swarm state; keeps image)
#   ./hosts.sh purge   # down + rmi mom-host:latest + rm rootfs + tls
# Env: N=3, SWARM=0|1 (default 0: no swarm, no overlay -- the caller, e.g. momctl, forms them),
#      TLS=1 (mutual TLS on 2376, certs generated in ./tls), DIND_STORAGE=overlay2|fuse-overlayfs|vfs,
#      IP_PREFIX/SUBNET (outer network; host i gets ${IP_PREFIX}.$((10+i))).
# Timings are appended to ./timings.txt (git-ignored).
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(cd ../.. && pwd)"
. "$ROOT/scripts/lib.sh"   # debian_mirror

N=${N:-3}
IMG=mom-host:latest
NET=mom-hosts                 # outer bridge ("VPC")
SUBNET=${SUBNET:-172.31.77.0/24}
IP_PREFIX=${IP_PREFIX:-172.31.77}  # host i gets ${IP_PREFIX}.$((10+i))
OVL=mom-host-ovl                  # swarm overlay network (inside the inner engines)
OVL_SUBNET=${OVL_SUBNET:-10.77.0.0/24}
OVL_MTU=${OVL_MTU:-}               # optional; NB docker subtracts the 50-byte vxlan overhead from it
                                   # (mtu=1350 -> container eth0 1300). Default: 1450 on a 1500 underlay.
STORAGE=${DIND_STORAGE:-overlay2}  # overlay2 | fuse-overlayfs | vfs
LOG=timings.txt
TLS=${TLS:-0}                      # TLS=1: mutual TLS on 2376 (certs in ./tls), else plain 2375
SWARM=${SWARM:-0}                  # SWARM=1: up also forms a swarm and creates the overlay network

ts() { date +%s.%N; }
el() { awk -v a="$1" -v b="$(ts)" 'BEGIN{printf "%.1f", b-a}'; }
log() { echo "[$(date +%T)] $*" | tee -a "$LOG"; }
hip() { echo "${IP_PREFIX}.$((10+$1))"; }
inner() {
  local i=$1; shift
  if [ "$TLS" = 1 ]; then
    DOCKER_HOST=tcp://$(hip "$i"):2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH="$PWD/tls/client" docker "$@"
  else
    DOCKER_HOST=tcp://$(hip "$i"):2375 DOCKER_TLS_VERIFY= docker "$@"
  fi
}

# CA + one server cert per host (SAN = its IP) + one client cert; idempotent
make_certs() {
  mkdir -p tls/client && cd tls
  [ -f ca.pem ] || { openssl genrsa -out ca-key.pem 2048 2>/dev/null
    openssl req -x509 -new -key ca-key.pem -days 30 -subj /CN=mom-host-ca -out ca.pem; }
  for i in $(seq 1 "$N"); do
    d=host$i; mkdir -p $d; [ -f $d/server-cert.pem ] && continue
    openssl genrsa -out $d/server-key.pem 2048 2>/dev/null
    openssl req -new -key $d/server-key.pem -subj /CN=mom-host-$i -out $d/s.csr
    printf 'subjectAltName=IP:%s,IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' "$(hip "$i")" > $d/s.ext
    openssl x509 -req -in $d/s.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 -extfile $d/s.ext -out $d/server-cert.pem 2>/dev/null
    cp ca.pem $d/ca.pem; chmod 644 $d/*.pem
  done
  if [ ! -f client/cert.pem ]; then
    openssl genrsa -out client/key.pem 2048 2>/dev/null
    openssl req -new -key client/key.pem -subj /CN=mom-host-client -out client/c.csr
    printf 'extendedKeyUsage=clientAuth\n' > client/c.ext
    openssl x509 -req -in client/c.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 -extfile client/c.ext -out client/cert.pem 2>/dev/null
    cp ca.pem client/ca.pem
  fi
  cd ..
}

build_image() {
  if docker image inspect "$IMG" >/dev/null 2>&1; then log "image $IMG exists"; return; fi
  if [ ! -x rootfs/usr/sbin/dockerd ]; then
    t=$(ts)
    mirror="$(debian_mirror)"
    log "debootstrap bookworm from $mirror into $PWD/rootfs (log: debootstrap.log)"
    rm -rf rootfs
    # redis-server, iputils-ping, bash: the containers of `test`; fuse-overlayfs: DIND_STORAGE
    debootstrap --variant=minbase \
      --include=docker.io,containerd,runc,tini,iptables,ca-certificates,procps,iproute2,redis-server,fuse-overlayfs,iputils-ping,bash \
      bookworm rootfs "$mirror" > debootstrap.log 2>&1 || { tail -30 debootstrap.log; exit 1; }
    log "debootstrap: $(el "$t")s"
  fi
  install -m 0755 host-entry.sh rootfs/usr/local/bin/host-entry.sh
  rm -rf rootfs/var/cache/apt/archives/*.deb rootfs/var/lib/apt/lists/* || true
  t=$(ts)
  tar -C rootfs -c . | docker import \
      -c 'ENTRYPOINT ["/usr/bin/tini","--","/usr/local/bin/host-entry.sh"]' \
      -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      - "$IMG" >/dev/null
  log "docker import: $(el "$t")s size=$(docker image inspect -f '{{.Size}}' "$IMG")"
}

wait_engine() {
  local i=$1 t; t=$(ts)
  for _ in $(seq 1 120); do
    if inner "$i" version >/dev/null 2>&1; then log "host$i dockerd ready in $(el "$t")s"; return 0; fi
    sleep 0.5
  done
  echo "host$i dockerd did not come up"; docker logs --tail 50 mom-host-$i; return 1
}

up() {
  build_image
  docker network inspect "$NET" >/dev/null 2>&1 ||
    docker network create --driver bridge --subnet "$SUBNET" "$NET" >/dev/null
  TLSMOUNT=()
  [ "$TLS" = 1 ] && make_certs
  t=$(ts)
  for i in $(seq 1 "$N"); do
    [ "$TLS" = 1 ] && TLSMOUNT=(-v "$PWD/tls/host$i:/certs:ro")
    if ! docker container inspect mom-host-$i >/dev/null 2>&1; then
      docker volume create mom-host-$i >/dev/null
      # NOT --privileged: this VM's bounding set lacks CAP_SYS_RESOURCE, so runc fails with
      # "unable to apply caps: operation not permitted". Emulate privileged minus SYS_RESOURCE.
      docker run -d --name mom-host-$i --hostname mom-host-$i \
        --cap-add ALL --cap-drop SYS_RESOURCE \
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
        --security-opt systempaths=unconfined \
        --device /dev/fuse --device-cgroup-rule 'a *:* rwm' \
        --network "$NET" --ip "$(hip "$i")" \
        -v mom-host-$i:/var/lib/docker \
        -e DIND_STORAGE="$STORAGE" "${TLSMOUNT[@]}" \
        "$IMG" >/dev/null
    else
      docker start mom-host-$i >/dev/null
    fi
  done
  for i in $(seq 1 "$N"); do wait_engine "$i"; done
  log "all $N dind hosts up in $(el "$t")s (storage=$STORAGE: $(inner 1 info -f '{{.Driver}}'))"
  if [ "$SWARM" = 1 ]; then swarm; else
    for i in $(seq 1 "$N"); do
      [ "$(inner "$i" info -f '{{.Swarm.LocalNodeState}}')" = inactive ] ||
        echo "WARN: host$i is already in a swarm (SWARM=1 earlier?); '$0 down' resets it" >&2
    done
  fi
}

swarm() {
  if [ "$(inner 1 info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
    t=$(ts)
    inner 1 swarm init --advertise-addr "$(hip 1)" --listen-addr "$(hip 1):2377" >/dev/null
    log "swarm init: $(el "$t")s"
  fi
  tok=$(inner 1 swarm join-token -q worker)
  for i in $(seq 2 "$N"); do
    if [ "$(inner "$i" info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
      t=$(ts)
      inner "$i" swarm join --advertise-addr "$(hip "$i")" --listen-addr "$(hip "$i"):2377" \
        --token "$tok" "$(hip 1):2377" >/dev/null
      log "swarm join host$i: $(el "$t")s"
    fi
  done
  inner 1 node ls

  if ! inner 1 network inspect "$OVL" >/dev/null 2>&1; then
    t=$(ts)
    inner 1 network create --driver overlay --attachable --subnet "$OVL_SUBNET" \
      ${OVL_MTU:+--opt com.docker.network.driver.mtu=$OVL_MTU} "$OVL" >/dev/null
    log "overlay create: $(el "$t")s"
  fi
}

# copy an outer image into every inner engine (no registry)
load_image() {
  local img=$1 f=/tmp/mom-host-img.$$.tar t
  t=$(ts); docker save "$img" -o "$f"
  log "docker save $img: $(el "$t")s, $(du -h "$f" | cut -f1)"
  for i in $(seq 1 "$N"); do
    t=$(ts); inner "$i" load -i "$f" >/dev/null; log "load into host$i: $(el "$t")s"
  done
  rm -f "$f"
  t=$(ts); docker save "$img" | inner 1 load >/dev/null
  log "streamed save|load into host1 (reload): $(el "$t")s"
}

# the Docker endpoints of the hosts, comma-separated (what MOMCTL_AWS_DOCKER_HOST takes)
addrs() {
  local i out=()
  for i in $(seq 1 "$N"); do
    if [ "$TLS" = 1 ]; then out+=("https://$(hip "$i"):2376"); else out+=("tcp://$(hip "$i"):2375"); fi
  done
  (IFS=,; echo "${out[*]}")
}

# exits 1 if any check failed
test_net() {
  local fails=0
  SWARM=1 up
  load_image "$IMG"
  # plain containers (not services) on the attachable overlay, one per host
  for i in $(seq 1 "$N"); do
    inner "$i" rm -f mom-host-c$i >/dev/null 2>&1 || true
    t=$(ts)
    inner "$i" run -d --name mom-host-c$i --hostname mom-host-c$i --network "$OVL" \
      --ip "10.77.0.$((10+i))" --entrypoint /usr/bin/redis-server "$IMG" \
      --bind 0.0.0.0 --protected-mode no >/dev/null
    log "run mom-host-c$i on host$i (first attach): $(el "$t")s"
  done
  sleep 2
  for i in $(seq 1 "$N"); do
    for j in $(seq 1 "$N"); do
      [ "$i" = "$j" ] && continue
      t=$(ts)
      if inner "$i" exec mom-host-c$i ping -c1 -W2 10.77.0.$((10+j)) >/dev/null; then r=ok; else r=FAIL; fails=$((fails+1)); fi
      log "ping by IP  c$i(host$i) -> 10.77.0.$((10+j)): $r $(el "$t")s"
      if inner "$i" exec mom-host-c$i ping -c1 -W2 mom-host-c$j >/dev/null; then r=ok; else r=FAIL; fails=$((fails+1)); fi
      log "ping by name c$i -> mom-host-c$j: $r"
      if inner "$i" exec mom-host-c$i bash -c "timeout 3 bash -c 'echo > /dev/tcp/mom-host-c$j/6379'"; then r=ok; else r=FAIL; fails=$((fails+1)); fi
      log "tcp c$i -> mom-host-c$j:6379: $r"
    done
  done
  # bigger payload to exercise MTU: redis-cli from c1 SET/GET a 100 KB value on c2
  if inner 1 exec mom-host-c1 bash -c 'v=$(head -c 75000 /dev/urandom | base64 -w0); redis-cli -h mom-host-c2 set big "$v" >/dev/null; [ "$(redis-cli -h mom-host-c2 get big | wc -c)" -gt 90000 ]'; then
    log "100KB redis SET/GET c1->c2 over overlay: ok"
  else log "100KB redis SET/GET c1->c2 over overlay: FAIL"; fails=$((fails+1)); fi
  [ "$fails" = 0 ] || { log "test: $fails check(s) FAILED"; return 1; }
  log "test: all checks ok"
}

# every mom-host-<n>, whatever N was when it was created; the volumes hold /var/lib/docker
# (inner images, containers, swarm state), so nothing survives down
down() {
  local c v
  c=$(docker ps -a --filter name=mom-host- --format '{{.Names}}' | grep -E '^mom-host-[0-9]+$' || true)
  [ -z "$c" ] || docker rm -f -v $c >/dev/null
  docker network rm "$NET" >/dev/null 2>&1 || true
  v=$(docker volume ls -q --filter name=mom-host- | grep -E '^mom-host-[0-9]+$' || true)
  [ -z "$v" ] || docker volume rm $v >/dev/null
  echo "down: removed containers [${c//$'\n'/ }], network $NET, volumes [${v//$'\n'/ }]"
}

case "${1:-}" in
  image) build_image ;;
  up) up ;;
  addrs) addrs ;;
  test) test_net ;;
  down) down ;;
  purge) down; docker rmi "$IMG" >/dev/null 2>&1 || true; rm -rf rootfs tls; echo purged ;;
  *) echo "usage: $0 image|up|addrs|test|down|purge" >&2; exit 1 ;;
esac
