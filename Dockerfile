# The broker image: the Debian bookworm base (scripts/images.sh) plus the mom-broker binary built
# on the host (same Debian bookworm glibc). Built through the Docker API by `momctl build`, whose
# build context is this file and the binary, nothing else.
FROM mom-base:bookworm
COPY mom-broker /usr/local/bin/mom-broker
ENV MOM_LISTEN=0.0.0.0:8080
EXPOSE 8080
STOPSIGNAL SIGTERM
CMD ["/usr/local/bin/mom-broker"]
