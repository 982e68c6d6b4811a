#!/usr/bin/env bash
# cm-pack keygen never leaves a public key that does not match its private
# key, and never writes through a planted symlink (issue 11): an existing
# FILE.pub (of another key) or FILE is refused with exit 2 and nothing is
# written; the pair it writes verifies together.
source "$(dirname "$0")/../cli/lib.inc"

expect_rc 0 cm-pack keygen -o a.key
# FILE.pub left from another key: refused, no FILE written.
cp a.key.pub b.key.pub
expect_rc 2 cm-pack keygen -o b.key
one_error_line cm-pack
grep -q 'b.key.pub: exists; refusing' "$T/err" || fail "message: $(cat "$T/err")"
[[ ! -e b.key ]] || fail "b.key written beside another key's b.key.pub"
cmp -s a.key.pub b.key.pub || fail "b.key.pub changed"
# FILE exists without its .pub: refused, no FILE.pub written (the old code
# wrote the new .pub, then refused the secret: a mismatched pair).
cp a.key c.key
expect_rc 2 cm-pack keygen -o c.key
grep -q 'c.key: exists; refusing' "$T/err" || fail "message: $(cat "$T/err")"
[[ ! -e c.key.pub ]] || fail "c.key.pub written beside another secret"
# A planted symlink at either name: refused, its target untouched.
echo precious >target
ln -s target d.key.pub
expect_rc 2 cm-pack keygen -o d.key
[[ $(cat target) == precious && ! -e d.key ]] || fail "wrote through the planted d.key.pub"
ln -s target e.key
expect_rc 2 cm-pack keygen -o e.key
[[ $(cat target) == precious && ! -e e.key.pub ]] || fail "wrote through the planted e.key"
# No temporary files left behind.
[[ -z $(ls -A | grep '\.tmp-') ]] || fail "temporary files left: $(ls -A)"
# --pub names the public file; the pair signs and verifies.
expect_rc 0 cm-pack keygen -o ccm.key --pub ccm.pub
[[ $(stat -c %a ccm.key) == 600 ]] || fail "secret key mode $(stat -c %a ccm.key)"
expect_rc 0 cm-pack commit --job j --serial 1 --sign-key ccm.key -o c.cma
expect_rc 0 cm-pack verify c.cma --pub-key ccm.pub
expect_rc 5 cm-pack verify c.cma --pub-key a.key.pub
echo PASS
