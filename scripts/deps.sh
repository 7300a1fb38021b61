#!/usr/bin/env bash
# Installs (if missing), starts, provisions and stops the suite's dependencies on loopback:
# PostgreSQL 15, RabbitMQ (with management) and OpenLDAP, all from Debian packages, each with its
# data under $SOC_STATE_DIR so nothing collides with system-wide instances, and Samba's Active
# Directory domain controller (scripts/samba-ad.sh; AD's fixed ports 389/636, skipped when they
# are taken). Idempotent.
#
#   scripts/deps.sh install | start | stop | status
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${SOC_STATE_DIR:-$ROOT/.local}"
PG_PORT="${SOC_PG_PORT:-55432}"
PG_BIN="${SOC_PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_DATA="$STATE/pg/data"
PG_SOCK="$STATE/pg/run"
AMQP_PORT="${SOC_AMQP_PORT:-5672}"
AMQP_MGMT_PORT="${SOC_AMQP_MGMT_PORT:-15672}"
RMQ_DIR="$STATE/rabbitmq"
LDAP_PORT="${SOC_LDAP_PORT:-3389}"
LDAP_DIR="$STATE/ldap"

log() { printf '[deps] %s\n' "$*" >&2; }

need_pkgs() {
  local missing=()
  [ -x "$PG_BIN/postgres" ] || missing+=(postgresql-15 postgresql-client-15)
  command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
  command -v slapd >/dev/null || missing+=(slapd)
  command -v ldapadd >/dev/null || missing+=(ldap-utils)
  command -v curl >/dev/null || missing+=(curl)
  command -v openssl >/dev/null || missing+=(openssl)
  # The OpenID provider of the SSO tests (scripts/oidc-provider: the oidc-provider package on Node).
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  # Active Directory for the directory tests (Samba's AD DC; winbind is its identity daemon).
  command -v samba >/dev/null || missing+=(samba samba-ad-dc samba-ad-provision winbind)
  # The web console: its build (Node.js 20.19+ and npm; Debian's nodejs is used only when there is
  # no node at all) and its browser tests (Debian's Chromium; pdftoppm renders the PDF reports).
  command -v node >/dev/null || missing+=(nodejs npm)
  command -v chromium >/dev/null || missing+=(chromium)
  command -v pdftoppm >/dev/null || missing+=(poppler-utils)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Debian's maintainer scripts would start system-wide instances; ours run from $STATE instead.
    local own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ "$own_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  fi
}

install_python() {
  if ! command -v uv >/dev/null; then
    log "installing uv"
    python3 -m pip install -q uv
  fi
  export UV_PYTHON_DOWNLOADS=never
  (cd "$ROOT" && uv sync --frozen --all-packages -q)
  (cd "$ROOT/scripts/oidc-provider" && npm ci --no-audit --no-fund --silent)
}

as_pg() { runuser -u postgres -- "$@"; }

pg_start() {
  mkdir -p "$STATE/pg" "$PG_SOCK"
  chown -R postgres:postgres "$STATE/pg"
  if [ ! -s "$PG_DATA/PG_VERSION" ]; then
    log "initdb $PG_DATA"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >> "$PG_DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = 300
shared_buffers = 512MB
work_mem = 16MB
maintenance_work_mem = 256MB
synchronous_commit = off
fsync = ${SOC_PG_FSYNC:-on}
wal_level = minimal
max_wal_senders = 0
max_wal_size = 4GB
log_min_messages = warning
CONF
  fi
  if as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    log "postgres already running on $PG_PORT"
  else
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$STATE/pg/server.log" -w -t 60 start >/dev/null
    log "postgres started on 127.0.0.1:$PG_PORT"
  fi
}

psql_super() { PGOPTIONS="-c client_min_messages=warning" as_pg psql -h "$PG_SOCK" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

pg_admin_role() {
  # Provisioning (databases, per-service roles and schemas) is done by soc_shared.provision over
  # TCP with this loopback-only administrative role.
  psql_super -d postgres <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'soc_admin') THEN
    CREATE ROLE soc_admin LOGIN SUPERUSER PASSWORD '${SOC_PG_ADMIN_PASSWORD:-soc_admin}';
  END IF;
END \$\$;
SQL
}

rmq_env() {
  export HOME="$RMQ_DIR/home"
  export RABBITMQ_NODENAME="${SOC_AMQP_NODE:-soc@localhost}"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$AMQP_PORT"
  export RABBITMQ_DIST_PORT="${SOC_AMQP_DIST_PORT:-25672}"
  export RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
  export RABBITMQ_LOG_BASE="$RMQ_DIR/log"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
  export RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq"
  export RABBITMQ_PID_FILE="$RMQ_DIR/rabbit.pid"
  export ERL_EPMD_ADDRESS=127.0.0.1
}

rmq_start() {
  mkdir -p "$RMQ_DIR/home" "$RMQ_DIR/mnesia" "$RMQ_DIR/log"
  rmq_env
  echo '[rabbitmq_management].' > "$RABBITMQ_ENABLED_PLUGINS_FILE"
  cat > "$RMQ_DIR/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $AMQP_MGMT_PORT
loopback_users = none
vm_memory_high_watermark.relative = 0.3
disk_free_limit.absolute = 200MB
CONF
  # Debian's wrappers run the broker and rabbitmqctl as the rabbitmq user.
  chown -R rabbitmq:rabbitmq "$RMQ_DIR"
  if rabbitmqctl -q status >/dev/null 2>&1; then
    log "rabbitmq already running on $AMQP_PORT"
  else
    rabbitmq-server > "$RMQ_DIR/log/console.log" 2>&1 &
    rabbitmqctl -q wait --timeout 90 "$RABBITMQ_PID_FILE" >/dev/null 2>&1 || {
      log "rabbitmq failed to start; see $RMQ_DIR/log"; exit 1; }
    log "rabbitmq started on 127.0.0.1:$AMQP_PORT (management :$AMQP_MGMT_PORT)"
  fi
}

rmq_admin_user() {
  rmq_env
  if ! rabbitmqctl -q list_users | awk '{print $1}' | grep -qx soc; then
    rabbitmqctl -q add_user soc "${SOC_AMQP_PASSWORD:-soc}" >/dev/null
    rabbitmqctl -q set_user_tags soc administrator
  fi
}

ldap_start() {
  mkdir -p "$LDAP_DIR/db"
  local conf="$LDAP_DIR/slapd.conf"
  local pass; pass=$(slappasswd -s "${SOC_LDAP_ADMIN_PASSWORD:-ldap-admin}")
  sed -e "s#@DB@#$LDAP_DIR/db#g" -e "s#@PID@#$LDAP_DIR/slapd.pid#g" -e "s#@ROOTPW@#$pass#g" \
    "$ROOT/scripts/ldap/slapd.conf.in" > "$conf"
  if [ -s "$LDAP_DIR/slapd.pid" ] && kill -0 "$(cat "$LDAP_DIR/slapd.pid")" 2>/dev/null; then
    log "slapd already running on $LDAP_PORT"
  else
    slapd -f "$conf" -h "ldap://127.0.0.1:$LDAP_PORT/" -u root -g root
    for _ in $(seq 50); do
      ldapsearch -x -H "ldap://127.0.0.1:$LDAP_PORT" -b "" -s base >/dev/null 2>&1 && break; sleep 0.1
    done
    log "slapd started on 127.0.0.1:$LDAP_PORT"
  fi
  if ! ldapsearch -x -H "ldap://127.0.0.1:$LDAP_PORT" -D "cn=admin,dc=soc,dc=local" \
      -w "${SOC_LDAP_ADMIN_PASSWORD:-ldap-admin}" -b "dc=soc,dc=local" -s base >/dev/null 2>&1; then
    ldapadd -x -H "ldap://127.0.0.1:$LDAP_PORT" -D "cn=admin,dc=soc,dc=local" \
      -w "${SOC_LDAP_ADMIN_PASSWORD:-ldap-admin}" -f "$ROOT/scripts/ldap/directory.ldif" >/dev/null
    log "directory loaded"
  fi
  if ! ldapsearch -x -H "ldap://127.0.0.1:$LDAP_PORT" -D "cn=admin,dc=soc,dc=local" \
      -w "${SOC_LDAP_ADMIN_PASSWORD:-ldap-admin}" -b "ou=admins,dc=soc,dc=local" -s base >/dev/null 2>&1; then
    ldapadd -x -H "ldap://127.0.0.1:$LDAP_PORT" -D "cn=admin,dc=soc,dc=local" \
      -w "${SOC_LDAP_ADMIN_PASSWORD:-ldap-admin}" -f "$ROOT/scripts/ldap/admin-directory.ldif" >/dev/null
    log "administrators' directory loaded"
  fi
}

start() {
  need_pkgs
  pg_start
  pg_admin_role
  rmq_start
  rmq_admin_user
  ldap_start
  bash "$ROOT/scripts/samba-ad.sh" start || log "Samba AD DC not started (see above): the Active Directory tests will skip"
}

stop() {
  if [ -s "$PG_DATA/PG_VERSION" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast stop >/dev/null 2>&1 || true
  fi
  if command -v rabbitmqctl >/dev/null; then rmq_env; rabbitmqctl -q shutdown >/dev/null 2>&1 || true; fi
  bash "$ROOT/scripts/samba-ad.sh" stop || true
  if [ -s "$LDAP_DIR/slapd.pid" ]; then kill "$(cat "$LDAP_DIR/slapd.pid")" 2>/dev/null || true; fi
  # slapd does not always leave its pid file (e.g. after a crash): match our own config file too.
  pkill -f "slapd -f $LDAP_DIR/slapd.conf" 2>/dev/null || true
  # Wait until the ports are free, so an immediate start (another checkout, CI) can bind them.
  for _ in $(seq 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null && ! (exec 3<>"/dev/tcp/127.0.0.1/$LDAP_PORT") 2>/dev/null; then break; fi
    sleep 0.2
  done
  log "stopped"
}

status() {
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1 && echo "postgres: up ($PG_PORT)" || echo "postgres: down"
  (rmq_env; rabbitmqctl -q status >/dev/null 2>&1) && echo "rabbitmq: up ($AMQP_PORT)" || echo "rabbitmq: down"
  ldapsearch -x -H "ldap://127.0.0.1:$LDAP_PORT" -b "" -s base >/dev/null 2>&1 && echo "slapd: up ($LDAP_PORT)" || echo "slapd: down"
  bash "$ROOT/scripts/samba-ad.sh" status
}

# PostgreSQL and RabbitMQ only, and the single-server operations `make chaos` performs on its own
# instances (its own SOC_STATE_DIR, ports and broker node name).
start_core() { need_pkgs; pg_start; pg_admin_role; rmq_start; rmq_admin_user; }
stop_core() {
  if [ -s "$PG_DATA/PG_VERSION" ]; then as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast stop >/dev/null 2>&1 || true; fi
  rmq_env; rabbitmqctl -q shutdown >/dev/null 2>&1 || true
}

case "${1:-start}" in
  install) need_pkgs; install_python ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  start-core) start_core ;;
  stop-core) stop_core ;;
  broker-stop) rmq_env; rabbitmqctl -q shutdown >/dev/null ;;
  broker-start) rmq_start ;;
  pg-restart) as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 restart -l "$STATE/pg/server.log" >/dev/null ;;
  *) echo "usage: $0 install|start|stop|status|start-core|stop-core|broker-stop|broker-start|pg-restart" >&2; exit 2 ;;
esac
