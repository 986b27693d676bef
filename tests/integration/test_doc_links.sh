#!/usr/bin/env bash
# The documentation stands alone: every relative link in every .md file of the repository
# resolves (file and #anchor), and nothing points at design notes outside the repository.
# The checker is first shown to catch each kind of problem in a scratch repository.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
py=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# a scratch repository with one problem of each kind
git init -q "$tmp/repo"
mkdir -p "$tmp/repo/docs"
printf '# Guide\n\n## Two words\n\nsee [a](b.md#two-words) and `[code](nowhere.md)`\n' >"$tmp/repo/docs/a.md"
printf '# B\n\n## Two words\n' >"$tmp/repo/docs/b.md"
printf '[missing](docs/gone.md), [anchor](docs/b.md#three-words), [up](../../etc/passwd)\n' >"$tmp/repo/README.md"
printf '/* see ../%s/%s.md */\n' shared SEED >"$tmp/repo/x.c"
out=$($py tests/integration/check_doc_links.py "$tmp/repo")
check "checker: a link to a missing file is reported" grep -q "README.md:1: link 'docs/gone.md': no such file" <<<"$out"
check "checker: a missing #anchor is reported" grep -q "no heading '#three-words' in docs/b.md" <<<"$out"
check "checker: a link out of the repository is reported" grep -q "'../../etc/passwd' leaves the repository" <<<"$out"
check "checker: a reference to the notes outside the repository is reported" grep -q "x.c:1: refers to ../sha""red" <<<"$out"
check "checker: links that resolve, and code spans, are not reported" \
  bash -c "! grep -q 'docs/a.md' <<<'$out'"

out=$($py tests/integration/check_doc_links.py .)
rc=$?
check "every relative link of the repository's .md files resolves, nothing refers outside" test $rc -eq 0
[ $rc -eq 0 ] || echo "$out"
check "README links the docs" \
  bash -c "grep -q '](docs/experiment.md)' README.md && grep -q '](docs/architecture.md)' README.md && grep -q '](docs/sweep-file.md)' README.md"
finish
