#!/usr/bin/env bash
# Docs that run (issue 12): every EXAMPLES line of every man page (man/*.1,
# man/*.5) and every ```sh block of README.md runs as written, on loopback.
#
# Each page (and the README) runs as one bash script, in order, in its own
# mount, PID and network namespaces (loopback up), with tmpfs or
# copy-on-write overlays over /etc, /var, /srv, /tmp and /root, so absolute
# paths such as /etc/content-mover/ccm.key and /srv/www work as written and
# nothing reaches the host; background daemons end with the namespace. The
# working directory holds what a reader has at hand: staging/ and shadow/
# trees (also as /srv/staging and /srv/shadow), empty /srv/www and /srv/site.
# The tools are the built ones ($CM_BIN first in PATH).
#
# A failure is any command of an example that exits non-zero (each cm-* tool
# run anywhere, in a pipeline or after &&, and every other simple command),
# or a page still running after its time (a daemon in the foreground). Every
# failure is listed with the page, the command and its last stderr lines;
# the script exits 1 when there is one. A README block preceded by
# `<!-- doc-test: skip: REASON -->` is not run (builds, installs, the test
# suite itself); roff text is unescaped (\- \e \(dq \(aq \f.) before running.
# CM_DOC_ONLY=cm-apply.1 runs the pages whose name holds that text only;
# CM_DOC_TIMEOUT (default 60) is each page's time in seconds.
# Needs root (exit 77 otherwise): namespaces and mounts.
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
  trap 'rm -rf "$W"' EXIT
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
      echo "doc_examples: $name: no examples"
      continue
    fi
    mkdir -p "$W/run/$name"
    set +e
    unshare --mount --net --pid --fork --propagation private bash "$0" inner "$s" "$W/run/$name"
    set -e
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
mkdir -p /tmp/.ovl/{up,wk}/{etc,var}
for d in etc var; do
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=/tmp/.ovl/up/$d,workdir=/tmp/.ovl/wk/$d" "/$d"
done
mkdir -p /etc/content-mover /var/lib/content-mover /var/spool
for d in /etc/content-mover /var/lib/content-mover /srv /root; do mount -t tmpfs tmpfs "$d"; done
chmod 1777 /tmp

# What a reader has at hand: a staging tree and the shadow copy of the last push.
work=/tmp/doc
mkdir -p "$work/staging/css" "$work/shadow/css"
for t in "$work/staging" "$work/shadow"; do
  seq 1 3000 >"$t/css/site.css"
  head -c 200000 /dev/zero | tr '\0' x >"$t/big.bin"
done
echo "<h1>new</h1>" >"$work/staging/index.html"
echo "<h1>old</h1>" >"$work/shadow/index.html"
echo "more" >>"$work/staging/css/site.css"
cp -a "$work/staging" /srv/staging
cp -a "$work/shadow" /srv/shadow
mkdir -p /srv/www /srv/site

fails=$R/failures
: >"$fails"
export PATH="$CM_BIN:$PATH" HOME=/root
unset CM_CONFIG_DIR JOURNAL_STREAM CM_LOG_TIMESTAMPS
{
  echo 'set -o pipefail'
  # Every cm-* run anywhere: a non-zero exit is a failure of the example.
  for t in cm-apply cm-delta cm-pack cm-push cm-leader cm-mcast; do
    printf '%s() { command %s "$@"; local rc=$?; ((rc == 0)) || printf "exit %%s: %%s\\n" "$rc" "%s $*" >>"%s"; return $rc; }\n' \
      "$t" "$t" "$t" "$fails"
  done
  printf 'trap '\''rc=$?; printf "exit %%s: %%s\\n" "$rc" "$BASH_COMMAND" >>"%s"'\'' ERR\n' "$fails"
  printf 'trap '\''printf "%%s\\n" "$BASH_COMMAND" >"%s/current"'\'' DEBUG\n' "$R"
  cat "$script"
  echo 'trap - DEBUG ERR'
} >"$R/run.sh"
cd "$work"
set +e
rc=0
(exec timeout -s KILL "$PAGE_TIMEOUT" bash "$R/run.sh" >"$R/out" 2>"$R/err" </dev/null) 2>/dev/null || rc=$?
set -e
if [[ $rc == 137 ]]; then
  echo "timed out after ${PAGE_TIMEOUT}s in: $(cat "$R/current" 2>/dev/null) (a daemon in the foreground?)" >>"$fails"
fi
if [[ -s $fails ]]; then
  # Wrapper and ERR trap may both name one failure: keep the first of each command.
  awk '!seen[$0]++' "$fails" | grep -vE '^exit [0-9]+: (command cm-|return \$rc)' >"$fails.u" || true
  mv "$fails.u" "$fails"
  { echo "  stderr (last lines):"; tail -n 6 "$R/err" | sed 's/^/    /'; } >>"$fails"
fi
exit 0
