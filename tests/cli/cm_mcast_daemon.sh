#!/bin/bash
# cm-mcast as a daemon and for programs (no root): the configuration comes
# from $CM_CONFIG_DIR/mcast.toml by default (flags win, unknown keys exit 2);
# SIGHUP does not end `recv --serve` or `serve`; every --json line is one
# object with "v":1, an "event" name and typed fields; the same mistakes give
# the same exit codes as the other tools (missing key file 2, missing input 3,
# bad configuration 2).
source "$(dirname "$0")/lib.inc"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"
}
trap cleanup EXIT
wait_for() {  # SECS CMD...: polls CMD every 0.1 s until it succeeds
  local end=$((SECONDS + $1)); shift
  until "$@"; do ((SECONDS < end)) || return 1; sleep 0.1; done
}
G=239.$((RANDOM % 200 + 20)).$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 30000))
export CM_CONFIG_DIR=$T/etc
mkdir -p "$CM_CONFIG_DIR" "$T/in" "$T/d"
head -c 400000 /dev/urandom >"$T/in/a.bin"
cm-pack keygen --group -o "$T/group.key" >/dev/null || fail "keygen --group"

# Exit codes for the same mistakes as every tool.
expect_rc 2 cm-mcast send "$T/in/a.bin" --group "$G" --key "$T/no-such.key"
one_error_line cm-mcast
expect_rc 3 cm-mcast send "$T/in/missing.bin" --group "$G" --receivers x
grep -q 'missing.bin' "$T/err" || fail "missing input not named: $(cat "$T/err")"
expect_rc 3 cm-mcast recv --group "$G" -o "$T/no-such-dir" --timeout 1
one_error_line cm-mcast
expect_rc 3 cm-mcast hash "$T/in/missing.bin"
expect_rc 2 cm-mcast --config "$T/no-such.toml" hash "$T/in/a.bin"
one_error_line cm-mcast

# The default configuration: an unknown key is exit 2 naming it ...
printf 'group = "%s"\nrat = "100M"\n' "$G" >"$CM_CONFIG_DIR/mcast.toml"
expect_rc 2 cm-mcast send "$T/in/a.bin"
one_error_line cm-mcast
grep -q 'mcast.toml:2: .*rat' "$T/err" || fail "unknown key not named: $(cat "$T/err")"
# ... and a good one supplies the group, the key and the rate (flags still win).
printf 'group = "%s"\nkey = "%s"\nrate = "200M"\n' "$G" "$T/group.key" >"$CM_CONFIG_DIR/mcast.toml"

cm-mcast recv --serve "$T/d" --id d1 --json >"$T/d.json" 2>"$T/d.err" & PIDS+=($!); DPID=$!
sleep 0.3
kill -HUP "$DPID"
wait_for 3 grep -q 'SIGHUP ignored' "$T/d.err" || fail "recv --serve: SIGHUP not logged: $(cat "$T/d.err")"
kill -0 "$DPID" 2>/dev/null || fail "SIGHUP killed recv --serve"
cm-mcast send "$T/in/a.bin" --receivers d1 --rate 300M --json -v >"$T/s.json" 2>"$T/s.err" ||
  fail "send with the default config: $(cat "$T/s.err")"
grep -q 'rate 300 Mbit/s' "$T/s.err" || fail "the --rate flag did not win over the config: $(cat "$T/s.err")"
cmp -s "$T/in/a.bin" "$T/d/a.bin" || fail "the daemon did not receive a.bin (keyed from the default config)"
wait_for 5 grep -q '"event":"file_result"' "$T/d.json" || fail "no file_result from the daemon: $(cat "$T/d.json")"

# serve: SIGHUP is not fatal either.
cm-mcast serve "$T/in/a.bin" --id srv >/dev/null 2>"$T/srv.err" & PIDS+=($!); SPID=$!
sleep 0.3
kill -HUP "$SPID"
wait_for 3 grep -q 'SIGHUP ignored' "$T/srv.err" || fail "serve: SIGHUP not logged: $(cat "$T/srv.err")"
kill -0 "$SPID" 2>/dev/null || fail "SIGHUP killed serve"
kill -TERM "$SPID" "$DPID"
wait "$SPID" || fail "serve exited $? on SIGTERM"
wait "$DPID" || fail "recv --serve exited $? on SIGTERM"

# --json: one object per line, each with v 1, a snake_case event and no sentence.
for f in "$T/s.json" "$T/d.json"; do
  [[ -s $f ]] || fail "$f is empty"
  bad=$(grep -v '^{"v":1,"event":"[a-z_]*",' "$f" || true)
  [[ -z $bad ]] || fail "a record without v/event in $f: $bad"
  grep -q '"event":"message"' "$f" && fail "a core line no pattern knows in $f: $(grep '"event":"message"' "$f")"
done
grep -q '"event":"session_start","role":"sender","t":[0-9.]*,"session":[0-9]*,"file":"a.bin","size":400000,"rate_bps":300000000' \
  "$T/s.json" || fail "session_start record: $(grep session_start "$T/s.json")"
grep -q '"event":"send_result","file":"a.bin","outcome":"all","seconds":[0-9.]*,"size":400000,' "$T/s.json" ||
  fail "send_result record: $(tail -n 1 "$T/s.json")"
grep -q '"event":"receiver_result","file":"a.bin","receiver":"d1","state":"complete"' "$T/s.json" ||
  fail "receiver_result record: $(cat "$T/s.json")"
grep -q '"event":"file_complete","role":"receiver",.*"file":"a.bin"' "$T/d.json" || fail "file_complete: $(cat "$T/d.json")"
cm-mcast hash "$T/in/a.bin" --json >"$T/h.json" || fail "hash --json"
grep -qE '^\{"v":1,"event":"hash","file":"[^"]*a.bin","hash":"[0-9a-f]{64}","size":400000,"name":"a.bin"\}$' "$T/h.json" ||
  fail "hash record: $(cat "$T/h.json")"
echo "ok: cm-mcast daemon, config dir, SIGHUP, JSON events, exit codes"
