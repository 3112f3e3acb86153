#!/bin/sh
# Stand-in for the official postgres image's entrypoint, for what docker-compose.yml uses of it.
#
# `postgres [options]` (the default command): as root, fix the owner of the data folder (a named
# volume may arrive owned by root) and start again as user postgres. As postgres, initialise an
# empty data folder once: initdb with POSTGRES_USER as superuser and POSTGRES_PASSWORD as its
# password, connections over TCP by password (scram-sha-256), then, with the server listening on
# its socket only (so nothing outside the container, healthcheck included, sees a half-made
# server), create POSTGRES_DB and run /docker-entrypoint-initdb.d/*.sql (psql, as POSTGRES_USER
# in POSTGRES_DB) and *.sh (sourced). Any other command runs as given.
#
# Left out (the stack does not use them): POSTGRES_INITDB_ARGS, POSTGRES_INITDB_WALDIR,
# POSTGRES_HOST_AUTH_METHOD, *_FILE secrets, *.sql.gz/xz/zst scripts, a non-default locale.
set -eu

if [ "${1#-}" != "$1" ]; then
    set -- postgres "$@"
fi

if [ "$1" = postgres ]; then
    if [ "$(id -u)" = 0 ]; then
        mkdir -p "$PGDATA"
        chown postgres:postgres "$PGDATA"
        chmod 700 "$PGDATA"
        exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
    fi
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        : "${POSTGRES_PASSWORD:?the database is uninitialized and POSTGRES_PASSWORD is not set}"
        user="${POSTGRES_USER:-postgres}"
        database="${POSTGRES_DB:-$user}"
        pwfile="$(mktemp)"
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
        initdb --username="$user" --pwfile="$pwfile" -D "$PGDATA"
        rm -f "$pwfile"
        printf "listen_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
        printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
        pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
        if [ "$database" != postgres ]; then
            psql -v ON_ERROR_STOP=1 --username "$user" --dbname postgres \
                --set db="$database" <<'SQL'
CREATE DATABASE :"db";
SQL
        fi
        for script in /docker-entrypoint-initdb.d/*; do
            case "$script" in
                *.sql) echo "running $script"; psql -v ON_ERROR_STOP=1 --username "$user" --dbname "$database" -f "$script" ;;
                *.sh) echo "running $script"; . "$script" ;;
                *) [ -e "$script" ] && echo "ignoring $script" ;;
            esac
        done
        pg_ctl -D "$PGDATA" -m fast -w stop
        echo "PostgreSQL init process complete; ready for start up."
    fi
fi

exec "$@"
