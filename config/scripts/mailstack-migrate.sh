#!/bin/sh
# mailstack mailbox import (config/migration.py writes it to <dataDir>/config/migrate; README "Migration").
#
#   mailstack-migrate.sh [--final] [ACCOUNT...]     (no ACCOUNT: every account with a migrateFrom)
#
# Runs inside the DMS container: `docker exec <mailserver> sh /tmp/docker-mailserver/migrate/mailstack-migrate.sh`.
# For each account, Dovecot's dsync copies the old server's mailboxes (through imapc) into the
# account's maildir:
#   default   `doveadm backup -R`: the new mailbox becomes a copy of the old one, keeping IMAP UIDs.
#             Resumable and idempotent: an interrupted run continues where it stopped, a second
#             run copies nothing new. It also removes what is not on the old server, so use it
#             only while mail is still delivered to the old server.
#   --final   `doveadm sync -1 -R`: one-way merge that deletes nothing; run it once after the MX
#             records point here, for the last mails that reached the old server (doveadm-sync(1)).
# The old server's password is read by Dovecot from "<account>.password" (0600) through the
# `<file` setting in "<account>.conf"; it is never on a command line.
set -eu

DIR=${MAILSTACK_MIGRATE_DIR:-/tmp/docker-mailserver/migrate}
DOVEADM=${DOVEADM:-doveadm}
final=0
if [ "${1:-}" = --final ]; then
  final=1
  shift
fi
if [ $# -eq 0 ]; then
  for conf in "$DIR"/*.conf; do
    [ -f "$conf" ] || continue
    name=${conf##*/}
    set -- "$@" "${name%.conf}"
  done
fi
if [ $# -eq 0 ]; then
  echo "mailstack-migrate: no account declares migrateFrom (see README, Migration)" >&2
  exit 2
fi

# Messages in every mailbox of the account; with "imapc:" those on the old server.
messages() {
  "$DOVEADM" -c "$conf" ${1:+-o "mail=$1"} -f flow mailbox status -u "$account" -t messages '*' 2>/dev/null |
    sed -n 's/.*messages=\([0-9]*\).*/\1/p'
}

failed=0
for account in "$@"; do
  conf="$DIR/$account.conf"
  if [ ! -f "$conf" ]; then
    echo "mailstack-migrate: $account: no migrateFrom declared (no $conf)" >&2
    failed=1
    continue
  fi
  source=$(messages imapc:)
  before=$(messages)
  if [ "$final" -eq 1 ]; then op="sync -1 -R"; else op="backup -R"; fi
  # dsync exits 2 when something changed during the run and a rerun is needed (doveadm-sync(1)):
  # retry a few times; every attempt continues from the state the previous one left.
  attempt=1
  while :; do
    set +e
    # shellcheck disable=SC2086 # $op is two or three words
    "$DOVEADM" -c "$conf" $op -u "$account" imapc:
    code=$?
    set -e
    [ "$code" -eq 2 ] && [ "$attempt" -lt 3 ] || break
    attempt=$((attempt + 1))
  done
  after=$(messages)
  if [ "$code" -eq 0 ]; then
    echo "mailstack-migrate: $account: old server ${source:-?} messages; here ${before:-0} before, ${after:-0} after ($(($after - ${before:-0})) copied)"
  else
    echo "mailstack-migrate: $account: doveadm $op failed (exit $code); run again to resume" >&2
    failed=1
  fi
done
exit $failed
