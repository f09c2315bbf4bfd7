# NGINX from Debian's nginx-light package, in the foreground. Its nginx.conf is rendered by momctl
# (templates/nginx.conf.tera) and copied into the container before it starts.
FROM mom-base:bookworm
ARG MIRROR=http://deb.debian.org/debian
RUN echo "deb $MIRROR bookworm main" > /etc/apt/sources.list \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/cache/apt/*.bin /etc/nginx/sites-enabled/default
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
