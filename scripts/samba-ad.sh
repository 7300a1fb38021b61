#!/usr/bin/env bash
# A real Active Directory domain controller (Samba's, from Debian's samba / samba-ad-dc /
# samba-ad-provision packages) on loopback, provisioned into a private folder with the test and
# demo accounts. Its LDAP ports are AD's own and fixed: 389 (StartTLS) and 636 (LDAPS). Plain
# simple binds are refused (AD's default "ldap server require strong auth").
#
#   scripts/samba-ad.sh start [DIR]   provision (first time: 5-30 s) and start
#   scripts/samba-ad.sh stop [DIR]
#   scripts/samba-ad.sh status [DIR]
#
# The ports are machine-wide, so is the domain's folder: DIR defaults to $SOC_AD_DIR or
# ${TMPDIR:-/tmp}/soc-samba-ad (every checkout and test session shares the one DC). A domain
# provisioned from other versions of these scripts is provisioned again. The domain:
#   realm SOC.TEST, NetBIOS domain SOCTEST, base DN DC=soc,DC=test, CA certificate DIR/tls/ca.pem
#   (the server certificate names 127.0.0.1, localhost and socdc.soc.test).
#   OU=Portal: svc-portal (the portal's service account) and the people below; OU=Groups: groups.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${2:-${SOC_AD_DIR:-${TMPDIR:-/tmp}/soc-samba-ad}}"
REALM=SOC.TEST
DOMAIN=SOCTEST
BASE="DC=soc,DC=test"
ADMIN_PASS="${SOC_AD_ADMIN_PASSWORD:-Adm1n-Samba-Pass!}"
CONF="$DIR/etc/smb.conf"

log() { printf '[samba-ad] %s\n' "$*" >&2; }

ports_taken() {
  (exec 3<>/dev/tcp/127.0.0.1/389) 2>/dev/null || (exec 3<>/dev/tcp/127.0.0.1/636) 2>/dev/null
}

make_tls() {
  local t="$DIR/tls"
  mkdir -p "$t"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=SOC Test AD CA" \
    -keyout "$t/ca-key.pem" -out "$t/ca.pem" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=socdc.soc.test" -keyout "$t/key.pem" \
    -out "$t/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:socdc.soc.test\nextendedKeyUsage=serverAuth\n' > "$t/ext.cnf"
  openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca-key.pem" -CAcreateserial \
    -days 3650 -extfile "$t/ext.cnf" -out "$t/cert.pem" 2>/dev/null
  chmod 600 "$t/key.pem" "$t/ca-key.pem"
}

provision() {
  rm -rf "$DIR"
  mkdir -p "$DIR/run" "$DIR/log"
  samba-tool domain provision --realm="$REALM" --domain="$DOMAIN" --server-role=dc \
    --dns-backend=NONE --adminpass="$ADMIN_PASS" --targetdir="$DIR" --host-name=socdc \
    --option="interfaces=lo" --option="bind interfaces only=yes" \
    --option="server services=ldap" --option="pid directory=$DIR/run" \
    --option="log file=$DIR/log/log.%m" --option="tls enabled=yes" \
    --option="tls keyfile=$DIR/tls/key.pem" --option="tls certfile=$DIR/tls/cert.pem" \
    --option="tls cafile=$DIR/tls/ca.pem" >/dev/null 2>&1
  make_tls
  /usr/bin/python3 "$ROOT/scripts/samba_ad_populate.py" "$CONF" "$DIR/private/sam.ldb" >/dev/null
  stamp > "$DIR/.provisioned"
}

stamp() { cat "$ROOT/scripts/samba-ad.sh" "$ROOT/scripts/samba_ad_populate.py" | sha256sum | cut -c1-16; }

current() { [ -e "$DIR/.provisioned" ] && [ "$(cat "$DIR/.provisioned")" = "$(stamp)" ]; }

running() { [ -s "$DIR/run/samba.pid" ] && kill -0 "$(cat "$DIR/run/samba.pid")" 2>/dev/null; }

start() {
  command -v samba >/dev/null || { log "samba is not installed (apt-get install samba samba-ad-dc samba-ad-provision winbind)"; exit 3; }
  if running; then
    if current; then return 0; fi
    log "the running domain was provisioned by other scripts: provisioning again"
    stop
  fi
  if ports_taken; then log "ports 389/636 are taken by another server"; exit 4; fi
  current || provision
  samba -s "$CONF" -D
  for _ in $(seq 150); do
    if (exec 3<>/dev/tcp/127.0.0.1/636) 2>/dev/null; then
      log "Samba AD DC $REALM on 127.0.0.1:389/636 ($DIR)"; return 0
    fi
    sleep 0.1
  done
  log "samba did not start; see $DIR/log"; exit 1
}

stop() {
  if running; then
    local pid; pid=$(cat "$DIR/run/samba.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) running && echo "samba-ad: up ($DIR)" || echo "samba-ad: down" ;;
  *) echo "usage: $0 start|stop|status [DIR]" >&2; exit 2 ;;
esac
