#!/usr/bin/env bash
# The package test (issue 12, "installs like a Debian tool"):
#  1. cpack builds content-mover-server and content-mover-ccm .deb files from
#     the build directory; their contents, control fields, conffiles and units
#     are checked (dpkg-deb -c/-I/-e); `cmake --install` to another prefix
#     puts that prefix in the units' ExecStart.
#  2. Both are installed with dpkg into a clean root: a chroot whose /usr, /etc
#     and /var are copy-on-write overlays of this host's (so the host's own
#     packages satisfy Depends, and nothing reaches the host), in private
#     mount, PID and network namespaces (loopback only). postinst must make
#     the content-mover system user, /etc/content-mover 0750 root:content-mover
#     (a dpkg-statoverride) and the spool.
#  3. Like an admin: keys with the installed cm-pack keygen, the installed
#     sample configs edited in place, every sample key checked against its
#     tool's loader (all uncommented); then the units' ExecStart commands run
#     as the units would (User=, NoNewPrivileges=, no capabilities,
#     ProtectSystem=strict with only ReadWritePaths=/StateDirectory=/
#     RuntimeDirectory= writable, PrivateTmp=, ProtectHome=): cm-leader and
#     two relays (web1 with /etc/content-mover/relay.toml, web2 with its own
#     copy); one push from the CCM (root) on loopback through the installed
#     binaries reaches both content roots.
#  4. A reinstall keeps an edited conffile; a purge removes configs, spool and
#     the statoverride and keeps the keys.
# Needs root (exit 77 otherwise); no network: the overlay root uses the
# host's installed packages. Everything it mounts lives in namespaces that
# end with it. Tools: cpack (cmake), dpkg-dev (dpkg-shlibdeps), file,
# adduser, util-linux (unshare, setpriv, findmnt): scripts/setup.
set -euo pipefail

if [[ ${1:-} == inner ]]; then
  inner_mode=1
else
  inner_mode=0
  : "${CM_BIN:?CM_BIN must point at the built tools}"
  : "${CM_SRC:?CM_SRC must point at the source tree}"
  if [[ $(id -u) != 0 ]]; then
    echo "package: skipped: needs root (dpkg into a chroot in mount, PID and network namespaces)" >&2
    exit 77
  fi
fi

fail() { echo "FAIL: package: $*" >&2; exit 1; }
note() { echo "package: $*"; }

# ---------------------------------------------------------------- outer part
outer() {
  local t
  for t in cpack dpkg-deb dpkg-shlibdeps file adduser unshare setpriv findmnt chroot; do
    command -v "$t" >/dev/null || fail "$t is missing (scripts/setup installs it)"
  done
  BUILD=$(cd "$CM_BIN/.." && pwd)
  [[ -f $BUILD/CPackConfig.cmake ]] || fail "$BUILD/CPackConfig.cmake missing: configure the build with cmake"
  W=$(mktemp -d "${TMPDIR:-/tmp}/cm-pkg-XXXXXX")
  trap 'rm -rf "$W"' EXIT

  # 1. Build and inspect the packages.
  cpack --config "$BUILD/CPackConfig.cmake" -G DEB -B "$W/cpack" >"$W/cpack.log" 2>&1 ||
    { cat "$W/cpack.log" >&2; fail "cpack failed"; }
  local srv ccm
  srv=$(ls "$W"/cpack/content-mover-server_*.deb 2>/dev/null) || fail "no content-mover-server .deb"
  ccm=$(ls "$W"/cpack/content-mover-ccm_*.deb 2>/dev/null) || fail "no content-mover-ccm .deb"
  note "built $(basename "$srv") $(basename "$ccm")"
  check_deb_contents "$srv" "$ccm"
  check_cmake_install

  mkdir -p "$W/ns" "$W/logs"
  cp "$srv" "$ccm" "$W/"
  set +e
  unshare --mount --net --pid --fork --propagation private bash "$0" inner "$W" "$CM_SRC"
  local rc=$?
  set -e
  [[ $rc == 0 ]] || fail "the install in the clean root failed (exit $rc)"
  echo "package: ok"
}

# Files of a package, one absolute path a line ("/usr/bin/cm-push"); dirs end in /.
deb_list() { dpkg-deb -c "$1" | awk '{print $6}' | sed 's|^\./|/|'; }

check_deb_contents() {
  local srv=$1 ccm=$2 f p
  deb_list "$srv" >"$W/srv.list"
  deb_list "$ccm" >"$W/ccm.list"
  for f in /usr/bin/cm-apply /usr/bin/cm-push /usr/bin/cm-leader /usr/bin/cm-mcast \
           /lib/systemd/system/cm-push-relay.service /lib/systemd/system/cm-leader.service \
           /etc/content-mover/relay.toml /etc/content-mover/leader.toml /etc/content-mover/apply.toml \
           /etc/content-mover/mcast.toml /usr/share/man/man1/cm-apply.1 /usr/share/man/man1/cm-push.1 \
           /usr/share/man/man1/cm-leader.1 /usr/share/man/man1/cm-mcast.1 \
           /usr/share/man/man5/content-mover-relay.toml.5 /usr/share/man/man5/content-mover-leader.toml.5 \
           /usr/share/man/man5/content-mover-apply.toml.5 /usr/share/man/man5/content-mover-mcast.toml.5 \
           /usr/share/doc/content-mover/INSTALL.md /var/lib/content-mover/; do
    grep -qxF "$f" "$W/srv.list" || fail "content-mover-server lacks $f"
  done
  for f in /usr/bin/cm-delta /usr/bin/cm-pack /etc/content-mover/pack.toml /etc/content-mover/sites.toml \
           /usr/share/man/man1/cm-delta.1 /usr/share/man/man1/cm-pack.1 \
           /usr/share/man/man5/content-mover-pack.toml.5 /usr/share/man/man5/content-mover-sites.toml.5 \
           /var/lib/content-mover/ccm/; do
    grep -qxF "$f" "$W/ccm.list" || fail "content-mover-ccm lacks $f"
  done
  # Only places a package may use (a staging path leaking in would show here).
  ! grep -vE '^/(etc|usr|lib|var)(/|$)|^/$' "$W/srv.list" "$W/ccm.list" || fail "files outside /etc /usr /lib /var"
  # One owner per file: both packages can be installed on one host.
  p=$(comm -12 <(grep -v '/$' "$W/srv.list" | sort) <(grep -v '/$' "$W/ccm.list" | sort))
  [[ -z $p ]] || fail "files in both packages: $p"
  [[ $(dpkg-deb -c "$ccm" | awk '$6 == "./var/lib/content-mover/ccm/" {print $1}') == drwx------ ]] ||
    fail "/var/lib/content-mover/ccm is not 0700"
  # conffiles: exactly the files under /etc.
  for p in server ccm; do
    f=$srv; [[ $p == ccm ]] && f=$ccm
    dpkg-deb -e "$f" "$W/ctl-$p"
    diff <(grep '^/etc/.*[^/]$' "$W/${p/server/srv}.list" | sort) <(sort "$W/ctl-$p/conffiles") >/dev/null ||
      fail "$p: conffiles differ from the files under /etc: $(cat "$W/ctl-$p/conffiles")"
  done
  [[ -x $W/ctl-server/postinst && -x $W/ctl-server/prerm && -x $W/ctl-server/postrm ]] || fail "server: maintainer scripts"
  local dep
  dep=$(dpkg-deb -f "$srv" Depends)
  for p in adduser libzstd1 libsodium23 libsqlite3-0 libisal2 libc6; do
    tr ',|' '\n\n' <<<"$dep" | sed -E 's/^ *([^ (]+).*/\1/' | grep -qx "$p" || fail "server Depends lacks $p: $dep"
  done
  dep=$(dpkg-deb -f "$ccm" Depends)
  [[ $dep == *"content-mover-server (= $(dpkg-deb -f "$srv" Version))"* ]] || fail "ccm Depends: $dep"
  [[ $dep == *libzstd1* && $dep == *libsodium23* ]] || fail "ccm Depends lacks its libraries: $dep"
  note "contents, conffiles and Depends ok (server: $(dpkg-deb -f "$srv" Depends))"

  # The units, as packaged.
  dpkg-deb -x "$srv" "$W/x"
  local relay=$W/x/lib/systemd/system/cm-push-relay.service leader=$W/x/lib/systemd/system/cm-leader.service u
  grep -qx 'ExecStart=/usr/bin/cm-push relay --config /etc/content-mover/relay.toml' "$relay" || fail "relay ExecStart"
  grep -qx 'ExecStart=/usr/bin/cm-leader run --config /etc/content-mover/leader.toml --state-file /run/content-mover/leader.json' \
    "$leader" || fail "leader ExecStart"
  for u in "$relay" "$leader"; do
    for p in User=content-mover Group=content-mover ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
             NoNewPrivileges=yes 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK' CapabilityBoundingSet= \
             Restart=on-failure RuntimeDirectory=content-mover RuntimeDirectoryPreserve=yes; do
      grep -qxF "$p" "$u" || fail "$(basename "$u") lacks $p"
    done
  done
  grep -qxF 'ReadWritePaths=-/srv -/var/lib/prometheus/node-exporter' "$relay" || fail "relay ReadWritePaths"
  grep -qxF 'StateDirectory=content-mover/spool' "$relay" || fail "relay StateDirectory"
  note "units ok"
}

# `cmake --install` to /usr/local (DESTDIR): units name that prefix, sample
# configs go to share/doc (the tools read /etc/content-mover only).
check_cmake_install() {
  DESTDIR="$W/di" cmake --install "$BUILD" --prefix /usr/local >"$W/install.log" 2>&1 ||
    { cat "$W/install.log" >&2; fail "cmake --install"; }
  local d=$W/di/usr/local
  for f in bin/cm-apply bin/cm-delta bin/cm-pack bin/cm-push bin/cm-leader bin/cm-mcast share/man/man1/cm-push.1 \
           share/man/man5/content-mover-sites.toml.5 share/doc/content-mover/etc/relay.toml lib/systemd/system/cm-leader.service; do
    [[ -e $d/$f ]] || fail "cmake --install: no $f"
  done
  grep -q '^ExecStart=/usr/local/bin/cm-push relay ' "$d/lib/systemd/system/cm-push-relay.service" || fail "cmake --install: relay ExecStart"
  [[ ! -e $W/di/etc ]] || fail "cmake --install to /usr/local wrote into /etc"
  note "cmake --install ok"
}

# ---------------------------------------------------------------- inner part
# Runs as PID 1 of new mount, PID and network namespaces.
inner() {
  W=$1 CM_SRC=$2
  R=$W/ns/root
  mount -t proc proc /proc  # this PID namespace's: $! and /proc/PID agree
  export PATH=/usr/sbin:/usr/bin:/sbin:/bin
  unset CM_CONFIG_DIR JOURNAL_STREAM CM_LOG_TIMESTAMPS
  ip link set lo up
  mount -t tmpfs -o mode=0755 tmpfs "$W/ns"
  mkdir -p "$R"
  local d l
  for d in usr etc var; do
    mkdir -p "$W/ns/up/$d" "$W/ns/wk/$d" "$R/$d"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$W/ns/up/$d,workdir=$W/ns/wk/$d" "$R/$d"
  done
  for l in bin sbin lib lib32 lib64 libx32; do
    if [[ -L /$l ]]; then ln -s "$(readlink "/$l")" "$R/$l"
    elif [[ -d /$l ]]; then mkdir "$R/$l" && mount --bind "/$l" "$R/$l" && mount -o remount,bind,ro "$R/$l"; fi
  done
  mkdir -p "$R"/{proc,dev,sys,tmp,run,srv,root,home}
  chmod 1777 "$R/tmp"
  mount -t proc proc "$R/proc"
  mount --rbind /dev "$R/dev"
  # A host that has Content Mover installed: start clean all the same.
  if chroot "$R" dpkg-query -W content-mover-server >/dev/null 2>&1 || chroot "$R" dpkg-query -W content-mover-ccm >/dev/null 2>&1; then
    chroot "$R" dpkg --purge content-mover-ccm content-mover-server >/dev/null 2>&1 || true
  fi
  rm -rf "$R/etc/content-mover" "$R/var/lib/content-mover"
  mkdir -p "$R/tmp/debs" && cp "$W"/*.deb "$R/tmp/debs/"

  # 2. Install.
  chroot "$R" sh -c 'dpkg -i /tmp/debs/content-mover-server_*.deb /tmp/debs/content-mover-ccm_*.deb' >"$W/logs/dpkg.log" 2>&1 ||
    { cat "$W/logs/dpkg.log" >&2; fail "dpkg -i"; }
  local pw
  pw=$(chroot "$R" getent passwd content-mover) || fail "postinst made no content-mover user"
  IFS=: read -r _ _ uid _ _ home shell <<<"$pw"
  ((uid < 1000)) || fail "content-mover is no system user (uid $uid)"
  [[ $shell == /usr/sbin/nologin && $home == /var/lib/content-mover ]] || fail "content-mover user: $pw"
  [[ $(chroot "$R" stat -c '%U:%G %a' "/etc/content-mover") == "root:content-mover 750" ]] ||
    fail "/etc/content-mover is $(chroot "$R" stat -c '%U:%G %a' "/etc/content-mover")"
  [[ $(chroot "$R" dpkg-statoverride --list /etc/content-mover) =~ ^root\ content-mover\ 0?750\ /etc/content-mover$ ]] ||
    fail "no statoverride for /etc/content-mover"
  [[ $(chroot "$R" stat -c '%U %a' "/var/lib/content-mover/spool") == "content-mover 700" ]] || fail "spool owner/mode"
  [[ $(chroot "$R" stat -c '%U %a' "/var/lib/content-mover/ccm") == "root 700" ]] || fail "ccm state dir owner/mode"
  [[ $(chroot "$R" dpkg-query -W -f '${Conffiles}' content-mover-server | grep -c /etc/content-mover/) == 4 ]] ||
    fail "server conffiles not registered"
  for d in cm-apply cm-delta cm-pack cm-push cm-leader cm-mcast; do
    chroot "$R" "/usr/bin/$d" --version >/dev/null || fail "installed $d does not run"
  done
  if chroot "$R" sh -c 'command -v man' >/dev/null; then
    chroot "$R" man -w content-mover-relay.toml cm-push >/dev/null 2>&1 || fail "man does not find the installed pages"
  fi
  if chroot "$R" sh -c 'command -v systemd-analyze' >/dev/null && [[ -e $R/lib/systemd/system/sysinit.target ]]; then
    chroot "$R" systemd-analyze verify --man=no /lib/systemd/system/cm-push-relay.service \
      /lib/systemd/system/cm-leader.service >"$W/logs/verify.log" 2>&1 || { cat "$W/logs/verify.log" >&2; fail "systemd-analyze verify"; }
    note "installed; units verify"
  else
    note "installed (systemd-analyze not here: units not verified)"
  fi

  # 3. Configure like an admin: keys, then the installed samples edited.
  local E=$R/etc/content-mover
  chroot "$R" cm-pack keygen -o /etc/content-mover/ccm.key --pub /etc/content-mover/ccm.pub
  chroot "$R" cm-pack keygen --group -o /etc/content-mover/group.key
  chroot "$R" chgrp content-mover /etc/content-mover/ccm.pub /etc/content-mover/group.key
  chmod 0640 "$E/ccm.pub" "$E/group.key"
  chmod 0600 "$E/ccm.key"
  check_sample_keys
  sed -i -e 's/^#name = .*/name = "web1"/' -e 's/^#listen = .*/listen = "127.0.0.2:7710"/' "$E/relay.toml"
  sed -e 's/^name = .*/name = "web2"/' -e 's/^listen = .*/listen = "127.0.0.3:7710"/' \
      -e 's|^spool = .*|spool = "/srv/web2/spool"|' -e 's|^root = .*|root = "/srv/web2/www"|' "$E/relay.toml" >"$E/relay-web2.toml"
  sed -i -e 's/^#address = .*/address = "127.0.0.2"/' -e 's/^#name = .*/name = "web1"/' \
      -e 's/^#segment = .*/segment = "lab"/' -e 's/^#ccm = .*/ccm = "127.0.0.1:7700"/' "$E/leader.toml"
  cat >"$E/sites.toml" <<'EOF'
[ccm]
listen = "127.0.0.1:7700"

[[site]]
name = "lab"
group = "239.255.7.1:7800"
  [[site.server]]
  name = "web1"
  address = "127.0.0.2"
  [[site.server]]
  name = "web2"
  address = "127.0.0.3"
EOF
  chroot "$R" install -d -o content-mover -g content-mover /srv/www /srv/web2 /srv/web2/www

  # The units' commands, as the units run them.
  local lcmd
  read -ra lcmd <<<"$(unit_exec cm-leader.service)"
  if ! chroot "$R" cm-leader run --help 2>&1 | grep -q -- --state-file; then
    note "this cm-leader has no --state-file yet (issue 12, ops-leader): started without it"
    lcmd=("${lcmd[@]:0:${#lcmd[@]}-2}")
  fi
  run_unit cm-leader.service "$W/logs/leader.log" "${lcmd[@]}"
  local leader_pid=$!
  local rcmd
  read -ra rcmd <<<"$(unit_exec cm-push-relay.service)"
  run_unit cm-push-relay.service "$W/logs/web1.log" "${rcmd[@]}" -v
  local web1=$!
  run_unit cm-push-relay.service "$W/logs/web2.log" "${rcmd[@]/relay.toml/relay-web2.toml}" -v
  local web2=$!
  wait_port 127.0.0.2 7710 || { cat "$W/logs/web1.log" >&2; fail "relay web1 does not listen"; }
  wait_port 127.0.0.3 7710 || { cat "$W/logs/web2.log" >&2; fail "relay web2 does not listen"; }
  check_sandboxed "$web1" relay
  check_sandboxed "$leader_pid" leader
  note "cm-leader and two relays run as content-mover, no new privileges, no capabilities"

  # One push from the CCM (root, like a cron job), serials from pack.toml's file.
  mkdir -p "$R/srv/staging/css"
  echo "hello from the package test" >"$R/srv/staging/index.html"
  seq 1 20000 >"$R/srv/staging/css/numbers.txt"
  chroot "$R" cm-pack replicate /srv/staging --job first -o /var/lib/content-mover/ccm/first.cma
  set +e
  chroot "$R" cm-push /var/lib/content-mover/ccm/first.cma --to /etc/content-mover/sites.toml \
    --state /var/lib/content-mover/ccm --serial-file /var/lib/content-mover/ccm/serial \
    --report /var/lib/content-mover/ccm/first.json --timeout 120 >"$W/logs/push.out" 2>"$W/logs/push.err"
  local rc=$?
  set -e
  if [[ $rc != 0 ]]; then
    tail -n 20 "$W"/logs/*.log "$W/logs/push.err" >&2
    fail "push exited $rc"
  fi
  diff -r "$R/srv/staging" "$R/srv/www/current" >/dev/null || fail "web1's live tree differs"
  diff -r "$R/srv/staging" "$R/srv/web2/www/current" >/dev/null || fail "web2's live tree differs"
  [[ $(chroot "$R" stat -c %U "/srv/www/current/index.html") == content-mover ]] || fail "content not owned by content-mover"
  [[ $(grep -o '"state":"committed"' "$R/var/lib/content-mover/ccm/first.json" | wc -l) == 2 ]] ||
    fail "report: $(cat "$R/var/lib/content-mover/ccm/first.json")"
  # cm-apply on the server reads apply.toml as the relay's user.
  chroot "$R" setpriv --reuid=content-mover --regid=content-mover --init-groups cm-apply status --root /srv/www \
    >"$W/logs/status.out" 2>&1 || { cat "$W/logs/status.out" >&2; fail "cm-apply status as content-mover"; }
  if [[ ${#lcmd[@]} -gt 4 ]]; then
    grep -q '"role"' "$R/run/content-mover/leader.json" 2>/dev/null || fail "no leader state file"
  fi
  note "pushed through the installed binaries to web1 and web2"

  # The daemons stop cleanly on SIGTERM, as systemctl stop sends it.
  kill -TERM "$web1" "$web2" "$leader_pid"
  for d in "$web1" "$web2"; do
    set +e; wait "$d"; rc=$?; set -e
    [[ $rc == 0 ]] || { tail "$W"/logs/web*.log >&2; fail "a relay exited $rc on SIGTERM"; }
  done
  wait "$leader_pid" || true
  ! grep -q ': error: ' "$W/logs/web1.log" || { cat "$W/logs/web1.log" >&2; fail "web1 logged an error"; }

  # 4. Reinstall keeps the edited conffile; purge removes what is the package's.
  chroot "$R" sh -c 'dpkg -i /tmp/debs/content-mover-server_*.deb' >>"$W/logs/dpkg.log" 2>&1 || fail "reinstall"
  grep -qx 'name = "web1"' "$E/relay.toml" || fail "reinstall replaced the edited relay.toml"
  chroot "$R" dpkg --purge content-mover-ccm content-mover-server >>"$W/logs/dpkg.log" 2>&1 ||
    { cat "$W/logs/dpkg.log" >&2; fail "purge"; }
  [[ ! -e $R/usr/bin/cm-push && ! -e $E/relay.toml && ! -e $E/pack.toml ]] || fail "purge left binaries or configs"
  [[ ! -e $R/var/lib/content-mover/spool && ! -e $R/var/lib/content-mover/ccm ]] || fail "purge left the spool or CCM state"
  [[ -e $E/ccm.key && -e $E/group.key ]] || fail "purge removed the keys"
  ! chroot "$R" dpkg-statoverride --list /etc/content-mover >/dev/null || fail "purge left the statoverride"
  note "reinstall kept the edited relay.toml; purge removed configs, spool, CCM state, override; kept keys"
}

# The ExecStart= of an installed unit (no quoting in ours).
unit_exec() { sed -n 's/^ExecStart=//p' "$R/lib/systemd/system/$1"; }
# Every value of KEY= in an installed unit, space separated.
unit_get() { sed -n "s/^$2=//p" "$R/lib/systemd/system/$1" | tr '\n' ' '; }

# run_unit UNIT LOG CMD...: runs CMD in the background as UNIT would: its
# User/Group, no new privileges, no capabilities, a private /tmp, /home and
# /root empty, the whole root read-only but ReadWritePaths= (existing ones),
# StateDirectory= and RuntimeDirectory= (made as systemd makes them). $! is
# the daemon itself (every step execs).
run_unit() {
  local unit=$1 log=$2 p
  shift 2
  local user group
  user=$(unit_get "$unit" User) user=${user% }
  group=$(unit_get "$unit" Group) group=${group% }
  [[ $(unit_get "$unit" ProtectSystem) == "strict " && $(unit_get "$unit" NoNewPrivileges) == "yes " ]] ||
    fail "$unit: not ProtectSystem=strict + NoNewPrivileges=yes"
  local rw=()
  for p in $(unit_get "$unit" StateDirectory); do
    chroot "$R" install -d -o "$user" -g "$group" -m "$(unit_get "$unit" StateDirectoryMode | tr -d ' ')" "/var/lib/$p"
    rw+=("/var/lib/$p")
  done
  for p in $(unit_get "$unit" RuntimeDirectory); do
    chroot "$R" install -d -o "$user" -g "$group" -m "$(unit_get "$unit" RuntimeDirectoryMode | tr -d ' ')" "/run/$p"
    rw+=("/run/$p")
  done
  for p in $(unit_get "$unit" ReadWritePaths); do
    if [[ $p == -* ]]; then p=${p#-}; [[ -e $R$p ]] || continue; fi
    rw+=("$p")
  done
  unshare --mount --propagation private bash -c '
    set -e
    R=$1 n=$2 user=$3 group=$4; shift 4
    rw=("${@:1:$n}"); shift "$n"
    for p in "${rw[@]}"; do mount --bind "$R$p" "$R$p"; done
    mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"                     # PrivateTmp=yes
    mount -t tmpfs -o mode=0755,ro tmpfs "$R/home"                 # ProtectHome=yes
    mount -t tmpfs -o mode=0700,ro tmpfs "$R/root"
    keep=" $R/tmp $R/home $R/root "
    for p in "${rw[@]}"; do keep+="$R$p "; done
    findmnt -R -n -r -o TARGET "$(dirname "$R")" | while read -r m; do   # ProtectSystem=strict
      case $m in "$R/proc"*|"$R/dev"*|"$R/sys"*) continue ;; esac
      [[ $keep == *" $m "* ]] || mount -o remount,bind,ro "$m"
    done
    exec chroot "$R" setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs \
      --bounding-set=-all --inh-caps=-all -- "$@"
  ' run_unit "$R" "${#rw[@]}" "$user" "$group" "${rw[@]}" "$@" 2>>"$log" &
}

wait_port() {
  local i
  for ((i = 0; i < 100; i++)); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# The process runs as content-mover with NoNewPrivs and an empty bounding set.
check_sandboxed() {
  local st=$R/proc/$1/status what=$2
  [[ -e $st ]] || fail "$what is not running"
  local uid
  uid=$(chroot "$R" id -u content-mover)
  grep -qE "^Uid:\s+$uid\s" "$st" || fail "$what runs as $(grep ^Uid: "$st")"
  grep -qE '^NoNewPrivs:\s+1' "$st" || fail "$what may gain privileges"
  grep -qE '^CapBnd:\s+0+$' "$st" || fail "$what keeps capabilities: $(grep ^CapBnd: "$st")"
  # In its mount namespace the file system is read-only but for its writable
  # paths: /var/tmp (world-writable) is not, the runtime directory is.
  local as=(nsenter --mount --root --target "$1" setpriv --reuid=content-mover --regid=content-mover --init-groups)
  if "${as[@]}" touch /var/tmp/cm-probe 2>/dev/null; then
    rm -f "$R/var/tmp/cm-probe"
    fail "$what can write /var/tmp: ProtectSystem=strict not in force"
  fi
  "${as[@]}" touch /run/content-mover/cm-probe || fail "$what cannot write /run/content-mover"
  rm -f "$R/run/content-mover/cm-probe"
}

# Every key of every sample, uncommented, is one its tool's loader accepts.
# A key the sample marks (new) may be unknown to a tool built before issue
# 12's change that adds it: it is then reported and left out. A probe key
# that no tool knows must be refused (so the check reads the file at all).
check_sample_keys() {
  local s f key out tries probe
  for s in relay leader apply pack mcast sites; do
    f=/tmp/all-$s.toml
    { sed -E 's/^([[:space:]]*)#([A-Za-z_[])/\1\2/' "$R/etc/content-mover/$s.toml"; echo "cm_probe_unknown = 1"; } >"$R$f"
    probe=0
    for ((tries = 0; tries < 12; tries++)); do
      set +e
      case $s in
        relay) out=$(chroot "$R" timeout 2 cm-push relay --config "$f" --listen 127.0.0.1:0 --spool /tmp/spool-all 2>&1) ;;
        leader) out=$(chroot "$R" timeout 2 cm-leader run --config "$f" --address 127.0.0.1 --group 239.255.7.9:7400 2>&1) ;;
        apply) out=$(chroot "$R" cm-apply status --config "$f" --root /tmp/none 2>&1) ;;
        pack) out=$(chroot "$R" cm-pack --config "$f" inspect /tmp/none.cma 2>&1) ;;
        mcast) out=$(chroot "$R" cm-mcast --config "$f" hash /etc/hostname 2>&1) ;;
        sites) out=$(chroot "$R" cm-push /tmp/none.cma --to "$f" 2>&1) ;;
      esac
      set -e
      key=$(grep -oE "$f:[0-9]+: [][A-Za-z0-9_.#-]+" <<<"$out" | head -1 | sed -E 's/.*: //; s/.*\.//') || true
      [[ -z $key ]] && break
      if [[ $key == cm_probe_unknown ]]; then
        probe=1
      elif [[ $(awk -v k="$key" '/^[[:space:]]*$/ {n = 0} /\(new\)/ {n = 1}
                 $0 ~ "^[[:space:]]*#?" k " = " {print n; exit}' "$R/etc/content-mover/$s.toml") == 1 ]]; then
        note "$s.toml: $key is not known to this build yet (new in issue 12)"
      else
        fail "$s.toml: the sample's key $key is refused: $out"
      fi
      sed -i -E "/^[[:space:]]*$key = /d" "$R$f"
    done
    ((probe)) || fail "$s: a key no tool knows was not refused: $out"
    ! grep -q "$f:" <<<"$out" || fail "$s.toml: $out"
  done
  note "every sample key is accepted by its tool"
}

if ((inner_mode)); then
  inner "$2" "$3"
else
  outer
fi
