# CI-only Python base built on a debootstrapped Debian (no registry is reachable). It trusts the host's
# TLS-intercepting CA so pip works inside builds; the project's own Dockerfile never does this.
FROM localbase:bookworm
RUN apt-get update -q && apt-get install -y -q --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
