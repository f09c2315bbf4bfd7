# One ZooKeeper node from Debian's zookeeper package, in the foreground, data in /data.
FROM mom-base:bookworm
RUN mkdir -p /data /conf /var/log/zookeeper \
 && printf '%s\n' 'tickTime=2000' 'initLimit=10' 'syncLimit=5' 'dataDir=/data' 'clientPort=2181' \
      'admin.enableServer=false' 'maxClientCnxns=0' '4lw.commands.whitelist=ruok,srvr,mntr' \
      'autopurge.purgeInterval=24' > /conf/zoo.cfg \
 && cp /etc/zookeeper/conf/log4j.properties /conf/ 2>/dev/null || true
ENV ZOOCFGDIR=/conf ZOO_LOG_DIR=/var/log/zookeeper ZOO_LOG4J_PROP=INFO,CONSOLE
VOLUME /data
EXPOSE 2181
CMD ["/usr/share/zookeeper/bin/zkServer.sh", "start-foreground", "/conf/zoo.cfg"]
