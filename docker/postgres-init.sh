#!/bin/sh
# Runs once, when the Postgres volume is first created: the bot gets its own role and database,
# so its credentials cannot read or change Prefect's tables (and Prefect's cannot read the bot's).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v bot_password="$BOT_DB_PASSWORD" <<'SQL'
CREATE ROLE concurrency_bot LOGIN PASSWORD :'bot_password';
CREATE DATABASE concurrency_bot OWNER concurrency_bot;
REVOKE ALL ON DATABASE concurrency_bot FROM PUBLIC;
REVOKE CONNECT ON DATABASE prefect FROM PUBLIC;
SQL
