# The demo directory: Debian's slapd with the project's own configuration and data.
FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slapd ldap-utils \
    && rm -rf /var/lib/apt/lists/*
COPY scripts/ldap /ldap
RUN mkdir -p /var/lib/soc-ldap/db && pass=$(slappasswd -s ldap-admin) \
    && sed -e "s#@DB@#/var/lib/soc-ldap/db#" -e "s#@PID@#/var/lib/soc-ldap/slapd.pid#" -e "s#@ROOTPW@#$pass#" \
       /ldap/slapd.conf.in > /ldap/slapd.conf \
    && slapadd -f /ldap/slapd.conf -l /ldap/directory.ldif
EXPOSE 3389
CMD ["slapd", "-d", "0", "-f", "/ldap/slapd.conf", "-h", "ldap://0.0.0.0:3389/", "-u", "root", "-g", "root"]
