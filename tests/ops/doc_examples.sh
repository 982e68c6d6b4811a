#!/usr/bin/env bash
# Docs that run (issue 12): every EXAMPLES line of every man page (man/*.1,
# man/*.5) and every ```sh block of README.md runs as written, on loopback.
# Run it as root: CM_BIN=$PWD/build/test/bin CM_SRC=$PWD bash tests/ops/doc_examples.sh
#
# Each page (and the README, its blocks in order) runs as one bash script in
# its own mount, PID and network namespaces (loopback up), with tmpfs or
# copy-on-write overlays over /etc, /var, /usr/local, /run, /srv, /tmp and
# /root, so absolute paths such as /etc/content-mover/ccm.key and /srv/www
# work as written and nothing reaches the host; daemons still running at the
# end die with the namespace. The tools are the built ones ($CM_BIN first in
# PATH); HOME is /root. Every page must have examples (a page without an
# EXAMPLES section fails).
#
# The world a page starts in, which the pages' EXAMPLES describe in words:
#   - the working directory (/tmp/doc) holds staging/, the new tree, and
#     shadow/, the CCM's shadow copy of what the servers run: a cm-apply
#     content root as `cm-push --shadow` keeps it, whose live tree
#     shadow/current is the old tree (one day older; css/site.css and
#     index.html differ, big.bin differs in its mtime only);
#   - /srv/staging and /srv/shadow are the same two, for absolute paths;
#   - /srv/www and /srv/site are empty content roots (a new server);
#   - no keys: each page makes those it uses (cm-pack keygen).
# Hosts: a page is one machine. ssh and scp to the hosts the examples name
# (ccm, web1, web2, web3) run on it, so a line stays what a user types on the
# CCM: `ssh HOST CMD...` runs CMD with bash in $HOME (as sshd would),
# `scp FILE... HOST:PATH` (and HOST:FILE PATH) copies with cp, PATH relative to
# $HOME (empty: $HOME). Any other host name is a failure. A man page names no
# other host: its examples are for one machine (servers on 127.0.0.2, ...).
#
# A failure is any command of an example that exits non-zero (each cm-* tool
# run anywhere, in a pipeline, after && or in the background, and every other
# simple command), but for `cm-delta --exit-code` exiting 15 (nothing
# changed), or a page still running after its time (a daemon in the
# foreground), or one that ends before its last line. A cm-* tool started
# with & runs as the child of a subshell that passes it SIGTERM and SIGINT, so
# `kill %1` or `kill $pid` stops the tool as it would at a terminal, and a
# daemon that does not stop cleanly (exit 0) on SIGTERM fails. Every failure
# is listed with the page, the command and its last stderr lines; the script
# exits 1 when there is one. A README block preceded by
# `<!-- doc-test: skip: REASON -->` is not run (builds, installs, the test
# suite itself). Roff text is unescaped (\- \e \(dq \(aq \f.) before
# running; roff requests (lines starting with . or ') are skipped.
# CM_DOC_ONLY=cm-apply.1 runs the pages whose name holds that text only;
# CM_DOC_TIMEOUT (default 60) is each page's time in seconds; CM_DOC_KEEP=1
# keeps the scripts and their output (run/PAGE/run.sh, out, err).
# Needs root (exit 77 otherwise): namespaces and mounts. Takes about 45 s.
set -euo pipefail
: "${CM_BIN:?CM_BIN must point at the built tools}"
: "${CM_SRC:?CM_SRC must point at the source tree}"
PAGE_TIMEOUT=${CM_DOC_TIMEOUT:-60}

if [[ ${1:-} != inner ]]; then
  if [[ $(id -u) != 0 ]]; then
    echo "doc_examples: skipped: needs root (mount, PID and network namespaces)" >&2
    exit 77
  fi
  W=$(mktemp -d "${TMPDIR:-/tmp}/cm-doc-XXXXXX")
  if [[ -n ${CM_DOC_KEEP:-} ]]; then
    echo "doc_examples: keeping $W (run/PAGE/{run.sh,out,err})"
  else
    trap 'rm -rf "$W"' EXIT
  fi
  # The examples, one script per source.
  python3 - "$CM_SRC" "$W/scripts" <<'PY'
import os, re, sys
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out)

def unroff(line):
    line = line.replace('\\\\', '\0')
    for a, b in (('\\-', '-'), ('\\e', '\\'), ('\\(dq', '"'), ('\\(aq', "'"), ('\\(em', '--'),
                 ('\\&', ''), ('\\ ', ' '), ('\\(ti', '~'), ('\\(ha', '^')):
        line = line.replace(a, b)
    line = re.sub(r'\\f[BIRP]', '', line)
    return line.replace('\0', '\\')

for name in sorted(os.listdir(os.path.join(src, 'man'))):
    if not re.search(r'\.[15]$', name):
        continue
    lines = open(os.path.join(src, 'man', name)).read().split('\n')
    body, in_ex, in_nf = [], False, False
    for l in lines:
        if l.startswith('.SH'):
            in_ex = l.split(None, 1)[1].strip().strip('"') in ('EXAMPLES', 'EXAMPLE') if len(l.split()) > 1 else False
            continue
        if not in_ex:
            continue
        if l.startswith('.nf'):
            in_nf = True
        elif l.startswith('.fi'):
            in_nf = False
        elif in_nf and not l.startswith(('.', "'")):
            body.append(unroff(l))
    with open(os.path.join(out, 'man-' + name + '.sh'), 'w') as f:
        f.write('\n'.join(body) + '\n')

text = open(os.path.join(src, 'README.md')).read()
blocks, skip = [], None
prev = ''
for m in re.finditer(r'(?ms)^```(\w*)\n(.*?)^```\s*$', text):
    before = text[:m.start()].rstrip('\n').split('\n')[-1]
    if m.group(1) not in ('sh', 'bash', 'shell'):
        continue
    if before.startswith('<!-- doc-test: skip'):
        continue
    blocks.append(m.group(2))
with open(os.path.join(out, 'readme.sh'), 'w') as f:
    f.write('\n'.join(blocks))
PY
  failed=0
  for s in "$W"/scripts/*.sh; do
    name=$(basename "$s" .sh)
    [[ -z ${CM_DOC_ONLY:-} || $name == *"$CM_DOC_ONLY"* ]] || continue
    if [[ ! -s $s ]] || ! grep -q '[^[:space:]]' "$s"; then
      failed=1
      echo "doc_examples: $name: FAILED: no examples (a man page needs an EXAMPLES section)"
      continue
    fi
    mkdir -p "$W/run/$name"
    set +e
    unshare --mount --net --pid --fork --propagation private bash "$0" inner "$s" "$W/run/$name"
    set -e
    if [[ ! -s $W/run/$name/failures && ! -e $W/run/$name/finished ]]; then
      echo "the page's namespace ended before its last line (setup failed?)" >>"$W/run/$name/failures"
    fi
    if [[ -s $W/run/$name/failures ]]; then
      failed=1
      echo "doc_examples: $name: FAILED"
      sed 's/^/    /' "$W/run/$name/failures"
    else
      echo "doc_examples: $name: ok ($(grep -c '[^[:space:]]' "$s") lines)"
    fi
  done
  if ((failed)); then
    echo "FAIL: doc_examples: some examples do not run as written (above)" >&2
    exit 1
  fi
  echo "doc_examples: ok"
  exit 0
fi

# ---- inner: PID 1 of fresh namespaces; runs one script ($2) with results in $3.
script=$2 R=$3
mount -t proc proc /proc
ip link set lo up
# The results outlive the private /tmp that hides them: /mnt, in this namespace.
cp "$script" "$R/example.sh"
mount --bind "$R" /mnt
R=/mnt script=/mnt/example.sh
mount -t tmpfs tmpfs /tmp
mkdir -p /tmp/.ovl/{up,wk}/{etc,var,usr-local}
for d in etc var usr/local; do
  o=${d//\//-}
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=/tmp/.ovl/up/$o,workdir=/tmp/.ovl/wk/$o" "/$d"
done
mkdir -p /etc/content-mover /var/lib/content-mover /var/spool
for d in /etc/content-mover /var/lib/content-mover /srv /root /run; do mount -t tmpfs tmpfs "$d"; done
chmod 1777 /tmp
export PATH="$CM_BIN:$PATH" HOME=/root
unset CM_CONFIG_DIR JOURNAL_STREAM CM_LOG_TIMESTAMPS

# What a reader has at hand: the new tree (staging/) and the CCM's shadow copy
# of what the servers run (shadow/, a cm-apply content root as cm-push
# --shadow keeps it: shadow/current is the old tree). Servers start empty.
work=/tmp/doc
old=/tmp/.old
mkdir -p "$work/staging/css" "$old/css"
for t in "$work/staging" "$old"; do
  seq 1 3000 >"$t/css/site.css"
  head -c 200000 /dev/zero | tr '\0' x >"$t/big.bin"
done
echo "<h1>new</h1>" >"$work/staging/index.html"
echo "<h1>old</h1>" >"$old/index.html"
echo "more" >>"$work/staging/css/site.css"
find "$old" -exec touch -d '1 day ago' {} +   # the last push was yesterday
cp -a "$work/staging" /srv/staging
cm-pack replicate "$old" --job initial -o /tmp/.old.cma
for s in "$work/shadow" /srv/shadow; do
  mkdir -p "$s"
  cm-apply /tmp/.old.cma --root "$s" --allow-unsigned --commit -q
done
rm -rf "$old" /tmp/.old.cma
mkdir -p /srv/www /srv/site

fails=$R/failures
: >"$fails"
# The prologue of every page's script: the failure wrappers and the ssh/scp
# stand-ins (see the header).
sed -e "s|@FAILS@|$fails|g" -e "s|@R@|$R|g" >"$R/run.sh" <<'PROLOGUE'
set -o pipefail
cm_doc_hosts=" ccm web1 web2 web3 "
cm_doc_fail() { printf 'exit %s: %s\n' "$1" "$2" >>"@FAILS@"; }
# Every cm-* run anywhere: a non-zero exit is a failure of the example, but for
# cm-delta --exit-code's 15 (nothing changed), which the examples test for.
# In a subshell (a daemon started with &, a pipeline) the tool runs as a child
# that gets the subshell's SIGTERM and SIGINT, so `kill %1` stops the tool as
# it would at a terminal, and its exit status counts.
cm_doc_run() {
  local t=$1 rc pid
  shift
  if [[ $BASHPID == "$$" ]]; then
    command "$t" "$@"
    rc=$?
  else
    # A trapped signal ends `wait` early (status 128+N): wait again for the
    # tool's own status; 127 means it was collected already.
    local sig=0 r
    trap 'sig=1; [[ -n ${pid:-} ]] && kill -TERM $pid 2>/dev/null' TERM
    trap 'sig=1; [[ -n ${pid:-} ]] && kill -INT $pid 2>/dev/null' INT
    command "$t" "$@" <&0 &
    pid=$!
    rc=0
    while :; do
      sig=0
      wait $pid
      r=$?
      ((r == 127)) && break
      rc=$r
      ((sig)) || break
    done
  fi
  if ((rc != 0)) && ! [[ $t == cm-delta && rc -eq 15 && " $* " == *" --exit-code "* ]]; then
    cm_doc_fail $rc "$t $*"
  fi
  return $rc
}
for t in cm-apply cm-delta cm-pack cm-push cm-leader cm-mcast; do
  eval "$t() { cm_doc_run $t \"\$@\"; }"
done
# ssh HOST CMD... and scp to and from HOST: for the hosts above, this machine.
cm_doc_host() {
  local h=${1#*@}
  [[ $cm_doc_hosts == *" $h "* ]] && return 0
  echo "$2: $h: not one of the example hosts ($cm_doc_hosts)" >&2
  return 1
}
ssh() {
  local rc
  while [[ ${1:-} == -* ]]; do shift; done
  if ! cm_doc_host "${1:-}" ssh; then cm_doc_fail 255 "ssh $*"; return 255; fi
  shift
  (cd ~ && bash -c "$*")
  rc=$?
  ((rc == 0)) || cm_doc_fail $rc "ssh ... $*"
  return $rc
}
scp() {
  local a p args=() opts=() rc
  for a in "$@"; do
    if [[ $a == -r ]]; then opts+=(-r); continue; fi
    if [[ $a == -* ]]; then continue; fi
    if [[ $a == [!/]*:* ]]; then
      if ! cm_doc_host "${a%%:*}" scp; then cm_doc_fail 1 "scp $*"; return 1; fi
      p=${a#*:}
      [[ $p == /* ]] || p=~/$p
      a=$p
    fi
    args+=("$a")
  done
  cp "${opts[@]}" -- "${args[@]}"
  rc=$?
  ((rc == 0)) || cm_doc_fail $rc "scp $*"
  return $rc
}
trap 'rc=$?; printf "exit %s: %s\n" "$rc" "$BASH_COMMAND" >>"@FAILS@"' ERR
trap 'printf "%s\n" "$BASH_COMMAND" >"@R@/current"' DEBUG
PROLOGUE
{
  cat "$script"
  echo 'trap - DEBUG ERR'
  echo ': >"'"$R"'/finished"'
} >>"$R/run.sh"
cd "$work"
set +e
rc=0
(exec timeout -s KILL "$PAGE_TIMEOUT" bash "$R/run.sh" >"$R/out" 2>"$R/err" </dev/null) 2>/dev/null || rc=$?
set -e
if [[ $rc == 137 ]]; then
  echo "timed out after ${PAGE_TIMEOUT}s in: $(cat "$R/current" 2>/dev/null) (a daemon in the foreground?)" >>"$fails"
elif [[ ! -e $R/finished ]]; then
  echo "ended (exit $rc) before its last line, in: $(cat "$R/current" 2>/dev/null)" >>"$fails"
fi
if [[ -s $fails ]]; then
  # Wrapper and ERR trap may both name one failure: keep the first of each command.
  awk '!seen[$0]++' "$fails" | grep -vE '^exit [0-9]+: (command |return |cm_doc_|\(cd ~)' >"$fails.u" || true
  mv "$fails.u" "$fails"
  { echo "  stderr (last lines):"; tail -n 6 "$R/err" | sed 's/^/    /'; } >>"$fails"
fi
exit 0
