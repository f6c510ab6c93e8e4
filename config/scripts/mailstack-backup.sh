#!/bin/sh
# mailstack backup job (config/backup.py writes it to <dataDir>/backup; docs/host.md "Backups").
#
#   mailstack-backup.sh loop                 scheduler: back up when due, forget+prune daily, check weekly
#   mailstack-backup.sh run                  one backup now (then prune/check when due)
#   mailstack-backup.sh health               exit 1 when the last success is older than twice the schedule
#   mailstack-backup.sh restore [SNAP] [DIR] restore mail-data, mail-state and config under DIR (default /)
#   mailstack-backup.sh drill [SNAP]         restore into a scratch dir, compare message counts with the live data
#   mailstack-backup.sh counts DIR           messages per maildir folder under DIR
#   mailstack-backup.sh restic ARGS...       restic with this job's repository (e.g. `restic snapshots`)
#
# POSIX sh (busybox ash in restic's Alpine image, dash on Debian). Credentials are files: restic
# reads RESTIC_PASSWORD_FILE and RESTIC_REPOSITORY_FILE itself; backend keys come from "$JOB/env",
# loaded below without being evaluated as shell. Nothing here prints them, and `set -x` is never on.
set -eu

JOB=${MAILSTACK_BACKUP_JOB:-/run/mailstack-backup}
ROOT=${MAILSTACK_BACKUP_ROOT:-/backup}
STATUS=${MAILSTACK_BACKUP_STATUS:-/status}
SOURCES="mail-data mail-state config"
PRUNE_EVERY=72000  # 20 h: at most once a day, even with an hourly schedule (prune rewrites packs)
CHECK_EVERY=604800 # a week
RETRY_AFTER=3600   # a failed run is retried after an hour (or the schedule, if shorter)

log() { echo "mailstack-backup: $*"; }

# KEY=VALUE lines -> exported variables. `read -r` and a prefix split, never `.`/eval: a value
# with `$(…)` or quotes stays a literal string.
load() {
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in '' | '#'*) continue ;; esac
    key=${line%%=*}
    case $key in '' | *[!A-Za-z0-9_]*)
      log "ignoring a malformed line in $1"
      continue
      ;;
    esac
    export "$key=${line#*=}"
  done <"$1"
}

load "$JOB/settings"
if [ -f "$JOB/env" ]; then load "$JOB/env"; fi
export RESTIC_PASSWORD_FILE="$JOB/password" RESTIC_REPOSITORY_FILE="$JOB/repository"
INTERVAL=${BACKUP_INTERVAL:-86400}
HOST=${BACKUP_HOST:-mailstack}
if [ -f "$JOB/ssh_config" ]; then
  # restic's sftp backend runs `ssh <host> -s sftp`, which reads ~/.ssh/config.
  mkdir -p "$HOME/.ssh" && cp "$JOB/ssh_config" "$HOME/.ssh/config" && chmod 600 "$HOME/.ssh/config"
fi

now() { date +%s; }
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
get() { cat "$STATUS/$1" 2>/dev/null || echo 0; }
put() { # atomically: a reader (verify, the healthcheck) never sees half a file
  printf '%s\n' "$2" >"$STATUS/.$1.tmp" && mv -f "$STATUS/.$1.tmp" "$STATUS/$1"
}
json_time() { if [ "$1" -gt 0 ]; then printf '"%s"' "$(iso "$1")"; else printf null; fi; }

write_status() { # $1 result of this attempt
  success=$(get last-success)
  check=$(get last-check)
  put status.json "$(printf '{"host": "%s", "schedule": "%s", "intervalSeconds": %s, "lastSuccess": %s, "lastSnapshot": "%s", "lastAttempt": %s, "lastResult": "%s", "lastCheck": %s, "lastCheckResult": "%s", "nextRun": %s}' \
    "$HOST" "${BACKUP_SCHEDULE:-}" "$INTERVAL" "$(json_time "$success")" "$(cat "$STATUS/last-snapshot" 2>/dev/null || true)" \
    "$(json_time "$(get last-attempt)")" "$1" "$(json_time "$check")" "$(cat "$STATUS/last-check-result" 2>/dev/null || true)" \
    "$(json_time "$(get next-run)")")"
}

ensure_repository() {
  if restic cat config >/dev/null 2>&1; then return 0; fi
  # Not readable: a new repository, or the backend is unreachable. `init` refuses an existing
  # repository ("config file already exists"), so trying it can never overwrite backups.
  log "initialising the repository"
  restic init
}

run() {
  mkdir -p "$STATUS"
  started=$(now)
  put last-attempt "$started"
  result=ok
  summary="$STATUS/.summary"
  paths=""
  for s in $SOURCES; do paths="$paths $ROOT/$s"; done
  if ! ensure_repository; then
    result="failed: repository"
  else
    # DMS keeps running: maildir delivers by rename (new file in tmp/, renamed into new/), so
    # every file restic reads is a complete message. A message moved new/ -> cur/ during the walk
    # can be missed by this snapshot (the next one has it); restic exits 3 for such vanished files.
    set +e
    # shellcheck disable=SC2086
    restic backup --host "$HOST" --json $paths >"$summary"
    code=$?
    set -e
    if [ "$code" -eq 0 ] || [ "$code" -eq 3 ]; then
      snapshot=$(sed -n 's/.*"message_type":"summary".*"snapshot_id":"\([0-9a-f]*\)".*/\1/p' "$summary" | tail -n 1)
      log "snapshot ${snapshot:-?} saved$([ "$code" -eq 3 ] && echo ' (some files changed while being read)')"
      put last-success "$(now)"
      put last-snapshot "$snapshot"
      [ "$code" -eq 0 ] || result="ok: some files changed while being read"
    else
      result="failed: backup (restic exit $code)"
    fi
  fi
  if [ "${result%%:*}" = ok ] && [ $(($(now) - $(get last-prune))) -ge "$PRUNE_EVERY" ]; then
    # --host: only this stack's snapshots; grouped by host and paths (restic's default).
    if restic forget --host "$HOST" --keep-daily "${KEEP_DAILY:-7}" --keep-weekly "${KEEP_WEEKLY:-4}" \
      --keep-monthly "${KEEP_MONTHLY:-6}" --prune; then
      put last-prune "$(now)"
    else
      result="failed: forget/prune"
    fi
  fi
  if [ "${result%%:*}" = ok ] && [ $(($(now) - $(get last-check))) -ge "$CHECK_EVERY" ]; then
    if restic check; then put last-check-result ok; else
      put last-check-result failed
      result="failed: check"
    fi
    put last-check "$(now)"
  fi
  rm -f "$summary"
  if [ "${result%%:*}" = ok ]; then next=$((started + INTERVAL)); else
    wait=$RETRY_AFTER
    [ "$INTERVAL" -lt "$wait" ] && wait=$INTERVAL
    next=$(($(now) + wait))
  fi
  put next-run "$next"
  write_status "$result"
  log "$result; next run at $(iso "$next")"
  [ "${result%%:*}" = ok ]
}

loop() {
  mkdir -p "$STATUS"
  now >/tmp/mailstack-backup-started
  trap 'exit 0' TERM INT
  log "every ${INTERVAL}s, repository: $(cat "$RESTIC_REPOSITORY_FILE")"
  while :; do
    # The schedule lives in the status directory on the host, so a restarted container (reboot,
    # replacement) keeps it instead of starting a backup at once.
    if [ "$(now)" -ge "$(get next-run)" ]; then run || true; fi
    sleep 60 &
    wait $! || true
  done
}

health() {
  limit=$((2 * INTERVAL))
  last=$(get last-success)
  if [ "$last" -gt 0 ]; then
    age=$(($(now) - last))
    [ "$age" -le "$limit" ] || {
      echo "last backup succeeded ${age}s ago (limit ${limit}s)"
      return 1
    }
    return 0
  fi
  # No success yet: healthy while the first run may still be going.
  started=$(cat /tmp/mailstack-backup-started 2>/dev/null || now)
  [ $(($(now) - started)) -le "$limit" ] || {
    echo "no backup has succeeded since the job started"
    return 1
  }
}

restore() {
  snapshot=${1:-latest}
  target=${2:-/}
  set --
  for s in $SOURCES; do set -- "$@" --include "$ROOT/$s"; done
  # --host: "latest" means this stack's latest snapshot.
  restic restore "$snapshot" --host "$HOST" --target "$target" "$@"
  log "restored $snapshot into ${target%/}$ROOT"
}

# One line per maildir folder (a directory with cur/): "<folder relative to DIR>\t<messages>".
counts() {
  dir=${1%/}
  find "$dir" -type d -name cur | sort | while IFS= read -r cur; do
    folder=${cur%/cur}
    n=$(find "$folder/cur" "$folder/new" -type f 2>/dev/null | wc -l)
    rel=${folder#"$dir"}
    printf '%s\t%s\n' "${rel#/}" "$((n + 0))"
  done
}

drill() {
  scratch=${MAILSTACK_DRILL_DIR:-/tmp/mailstack-drill}
  rm -rf "$scratch"
  mkdir -p "$scratch"
  restic restore "${1:-latest}" --host "$HOST" --target "$scratch" --include "$ROOT/mail-data" >/dev/null
  counts "$ROOT/mail-data" >"$scratch/live.tsv"
  counts "$scratch$ROOT/mail-data" >"$scratch/restored.tsv"
  # Every folder of either side, with both counts; a difference fails the drill (mail that arrived
  # or was deleted after the snapshot shows here too: run the drill right after a backup).
  if awk -F '\t' '
    FNR == NR { live[$1] = $2; seen[$1] = 1; next }
    { restored[$1] = $2; seen[$1] = 1 }
    END {
      bad = 0
      printf "%-50s %8s %8s\n", "mailbox", "live", "restored"
      for (m in seen) {
        l = (m in live) ? live[m] : "-"; r = (m in restored) ? restored[m] : "-"
        mark = (l == r) ? "" : "  DIFFERENT"; if (l != r) bad++
        printf "%-50s %8s %8s%s\n", m, l, r, mark
      }
      if (bad) { printf "drill: %d mailbox(es) differ\n", bad; exit 1 }
      print "drill: every mailbox has the same number of messages"
    }' "$scratch/live.tsv" "$scratch/restored.tsv"; then status=0; else status=1; fi
  rm -rf "$scratch"
  return $status
}

command=${1:-loop}
[ $# -gt 0 ] && shift
case $command in
  loop) loop ;;
  run) run ;;
  health) health ;;
  restore) restore "$@" ;;
  drill) drill "$@" ;;
  counts) counts "$@" ;;
  restic) restic "$@" ;; # any restic command with the job's repository and credentials
  *)
    echo "usage: $0 loop|run|health|restore [SNAPSHOT] [DIR]|drill [SNAPSHOT]|counts DIR|restic ARGS..." >&2
    exit 2
    ;;
esac
