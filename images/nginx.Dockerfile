# NGINX from Debian's nginx-light package, in the foreground. Its nginx.conf is rendered by momctl
# (templates/nginx.conf.tera) and copied into the container before it starts.
FROM mom-base:bookworm
RUN rm -f /etc/nginx/sites-enabled/default
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
