#!/usr/bin/env bash
# The same mistake gets the same exit code from cm-apply, cm-pack and cm-delta
# (lib/util/exit_codes.h): a key or --config file that is missing is 2; an
# input file or tree that is missing is 3, also when a directory on its path
# is a file; a path of the wrong kind (a file for a tree or root, a directory
# for a file) is 2; a missing root, state or output directory is 3.
source "$(dirname "$0")/lib.inc"

export CM_CONFIG_DIR=$T/etc
mkdir -p "$CM_CONFIG_DIR" old R
echo a >old/f
touch afile
cm-pack -q replicate old --job j1 --serial 1 -o r.cma
cm-delta --empty-old none old -o d.cmdt
same() {  # same CODE PATTERN CMD...: exit CODE, one error line matching PATTERN
  local want=$1 pat=$2; shift 2
  expect_rc "$want" "$@"
  [[ $(wc -l <"$T/err") == 1 ]] && grep -q "^cm-[a-z]*: error: .*$pat" "$T/err" || fail "'$*': $(cat "$T/err")"
}
# Missing key files: 2, naming the file.
same 2 nokey cm-apply --pub-key nokey r.cma --root R
same 2 nokey cm-apply --group-key nokey --allow-unsigned r.cma --root R
same 2 nokey cm-pack replicate old --sign-key nokey -o x.cma
same 2 nokey cm-pack replicate old --group-key nokey -o x.cma
same 2 nokey cm-pack verify r.cma --pub-key nokey
# A --config that is not there: 2.
same 2 nope.toml cm-apply --config nope.toml --allow-unsigned r.cma --root R
same 2 nope.toml cm-pack --config nope.toml replicate old -o x.cma
same 2 nope.toml cm-delta --config nope.toml old old -o x.cmdt
# Missing input: 3.
same 3 missing.cma cm-apply --allow-unsigned missing.cma --root R
same 3 missing.cma cm-apply verify missing.cma
same 3 missing.cma cm-pack inspect missing.cma
same 3 missing.cmdt cm-pack missing.cmdt --source old -o x.cma
same 3 missing cm-pack replicate missing -o x.cma
same 3 missing cm-delta missing old -o x.cmdt
same 3 missing cm-delta old missing -o x.cmdt
same 3 afile/x cm-apply --allow-unsigned afile/x.cma --root R
same 3 afile/x cm-pack afile/x.cmdt --source old -o x.cma
same 3 afile/x cm-delta afile/x old -o x.cmdt
# The wrong kind of path: 2.
same 2 afile cm-apply --allow-unsigned r.cma --root afile
same 2 afile cm-apply status afile
same 2 afile cm-pack replicate afile -o x.cma
same 2 afile cm-delta afile old -o x.cmdt
same 2 old cm-apply --allow-unsigned old --root R
same 2 old cm-pack old --source old -o x.cma
# A missing root, state or output directory: 3.
same 3 nodir cm-apply --allow-unsigned r.cma --root nodir
same 3 nodir cm-apply status nodir
same 3 nodir cm-apply rollback nodir
same 3 nodir cm-pack replicate old -o nodir/x.cma
same 3 nodir cm-pack replicate old --serial-file nodir/serial -o x.cma
same 3 nodir cm-delta old old -o nodir/x.cmdt
same 3 afile cm-pack replicate old -o afile/x.cma
same 3 afile cm-delta old old -o afile/x.cmdt
same 3 "nodir/k: No such" cm-pack keygen -o nodir/k
echo "cm_apply_same_mistakes: ok"
