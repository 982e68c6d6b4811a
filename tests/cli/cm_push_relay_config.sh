#!/usr/bin/env bash
# cm-push relay --config: a flag the user gave wins, a TOML key fills what no
# flag gave (also listen, cm_apply, cm_mcast), unknown keys and mistyped
# values are usage errors (exit 2, one line).
source "$(dirname "$0")/lib.inc"
port=$((20000 + RANDOM % 12000))  # below the ephemeral range (32768-)
pid=
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT

printf 'spool = "%s/spool"\nlisten = "127.0.0.1:1"\nbogus = 1\n' "$T" >unknown.toml
expect_rc 2 cm-push relay --config unknown.toml
one_error_line cm-push
grep -q "unknown.toml:3: bogus: unknown key" err || fail "unknown key not named with its line: $(cat err)"

printf 'spool = "%s/spool"\nmember_wait = "long"\n' "$T" >typed.toml
expect_rc 2 cm-push relay --config typed.toml
grep -q "typed.toml:2: member_wait: expected a number" err || fail "mistyped key not named: $(cat err)"
printf 'spool = "%s/spool"\nmember_retry = -1\n' "$T" >negative.toml
expect_rc 2 cm-push relay --config negative.toml
grep -q "negative.toml:2: member_retry: expected a number of seconds >= 0" err || fail "negative seconds: $(cat err)"
# A mistyped key is an error even when a flag gives that setting.
expect_rc 2 cm-push relay --config typed.toml --member-wait 5
grep -q "member_wait" err || fail "mistyped key hidden by its flag: $(cat err)"

# No keys: the relay refuses to start (orders and reports are authenticated).
printf 'spool = "%s/spool"\nlisten = "127.0.0.1:%d"\n' "$T" "$port" >nokeys.toml
expect_rc 2 env CM_CONFIG_DIR="$T/none" cm-push relay --config nokeys.toml
one_error_line cm-push
grep -q "public key" err || fail "missing key not named: $(cat err)"

# Keys from the configuration directory (CM_CONFIG_DIR stands for /etc/content-mover).
export CM_CONFIG_DIR="$T/conf"
mkdir -p conf && cm-pack keygen -o conf/ccm.key >/dev/null && cp conf/ccm.key.pub conf/ccm.pub
cm-pack keygen --group -o conf/group.key >/dev/null
# listen from TOML is used when no flag is given ...
printf 'spool = "%s/spool"\nname = "from-toml"\nlisten = "127.0.0.1:%d"\n' "$T" "$port" >relay.toml
cm-push relay --config relay.toml -q & pid=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/v1/status" >status 2>/dev/null && break; sleep 0.1; done
grep -q '"name":"from-toml"' status || fail "TOML listen/name not used: $(cat status 2>/dev/null)"
# SIGHUP (a terminal closing, logrotate) does not kill the relay.
kill -HUP "$pid"; sleep 0.3
kill -0 "$pid" 2>/dev/null || fail "SIGHUP killed the relay"
curl -sf "http://127.0.0.1:$port/v1/status" >/dev/null || fail "the relay stopped answering after SIGHUP"
kill -TERM "$pid"; wait "$pid" || fail "relay did not stop cleanly on SIGTERM"
# ... and a flag wins over it.
cm-push relay --config relay.toml --listen "127.0.0.1:$((port + 1))" --name from-flag -q & pid=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$((port + 1))/v1/status" >status 2>/dev/null && break; sleep 0.1; done
grep -q '"name":"from-flag"' status || fail "flags did not win over the TOML: $(cat status 2>/dev/null)"
kill -TERM "$pid"; wait "$pid" || fail "relay did not stop cleanly on SIGTERM"
# A bool key and a seconds key: the TOML fills them when no flag is given ...
printf 'spool = "%s/spool"\nlisten = "127.0.0.1:%d"\nallow_unsigned = false\nmember_wait = 42\nmember_retry = 1.5\nspool_keep = 4\n' \
  "$T" "$((port + 2))" >both.toml
cm-push relay --config both.toml -v 2>log & pid=$!
for _ in $(seq 1 50); do grep -q "listening" log && break; sleep 0.1; done
grep -q "member wait 42s, retry 1.5s; spool keeps 4 serials; unsigned assignments refused" log ||
  fail "TOML bool/seconds not used: $(cat log)"
kill -TERM "$pid"; wait "$pid" || fail "relay did not stop cleanly on SIGTERM"
# ... and the flags win over them.
cm-push relay --config both.toml --listen "127.0.0.1:$((port + 3))" --allow-unsigned --member-wait 7 --spool-keep 2 \
  -v 2>log & pid=$!
for _ in $(seq 1 50); do grep -q "listening" log && break; sleep 0.1; done
grep -q "member wait 7s, retry 1.5s; spool keeps 2 serials; unsigned assignments accepted" log ||
  fail "flags did not win over TOML bool/seconds: $(cat log)"
kill -TERM "$pid"; wait "$pid" || fail "relay did not stop cleanly on SIGTERM"
pid=

# spool_keep is at least 1.
printf 'spool = "%s/spool"\nspool_keep = 0\n' "$T" >keep.toml
expect_rc 2 cm-push relay --config keep.toml
grep -q "keep.toml:2: spool_keep: expected an integer >= 1" err || fail "spool_keep = 0 not refused: $(cat err)"
expect_rc 2 cm-push relay --spool "$T/spool" --spool-keep 0
one_error_line cm-push

# Without --config, CONF/relay.toml is read when it exists; --metrics writes
# the node_exporter textfile (cm_relay_up 1 while it runs, 0 once stopped).
printf 'spool = "%s/spool"\nname = "from-conf"\nlisten = "127.0.0.1:%d"\nmetrics = "%s/relay.prom"\n' \
  "$T" "$((port + 4))" "$T" >conf/relay.toml
cm-push relay -q & pid=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$((port + 4))/v1/status" >status 2>/dev/null && break; sleep 0.1; done
grep -q '"name":"from-conf"' status || fail "CONF/relay.toml not read by default: $(cat status 2>/dev/null)"
grep -q '^cm_relay_up 1$' relay.prom || fail "no metrics textfile: $(cat relay.prom 2>/dev/null)"
kill -TERM "$pid"; wait "$pid" || fail "relay did not stop cleanly on SIGTERM"
pid=
grep -q '^cm_relay_up 0$' relay.prom || fail "the textfile does not say the relay stopped: $(cat relay.prom)"
echo ok
