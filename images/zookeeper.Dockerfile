# One ZooKeeper node from Debian's zookeeper package, in the foreground, data in /data. The package
# depends on the full JRE (X11, GTK, Mesa: 400 MB more) where the server needs the headless one:
# it is installed without that one dependency.
FROM mom-base:bookworm
ARG MIRROR=http://deb.debian.org/debian
RUN echo "deb $MIRROR bookworm main" > /etc/apt/sources.list \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      default-jre-headless adduser libzookeeper-java >/dev/null \
 && cd /tmp && apt-get download -qq zookeeper \
 && DEBIAN_FRONTEND=noninteractive dpkg --ignore-depends=default-jre -i zookeeper_*.deb >/dev/null \
 && rm -rf /tmp/*.deb /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/cache/apt/*.bin \
 && mkdir -p /data /conf /var/log/zookeeper \
 && printf '%s\n' 'tickTime=2000' 'initLimit=10' 'syncLimit=5' 'dataDir=/data' 'clientPort=2181' \
      'admin.enableServer=false' 'maxClientCnxns=0' '4lw.commands.whitelist=ruok,srvr,mntr' \
      'autopurge.purgeInterval=24' > /conf/zoo.cfg \
 && { cp /etc/zookeeper/conf/log4j.properties /conf/ 2>/dev/null || true; }
ENV ZOOCFGDIR=/conf ZOO_LOG_DIR=/var/log/zookeeper ZOO_LOG4J_PROP=INFO,CONSOLE
VOLUME /data
EXPOSE 2181
CMD ["/usr/share/zookeeper/bin/zkServer.sh", "start-foreground", "/conf/zoo.cfg"]
