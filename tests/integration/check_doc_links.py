#!/usr/bin/env python3
"""Checks the repository's own documentation: every relative link in every .md file (tracked,
or new and not ignored) names a file or folder inside the repository, and a #anchor names a
heading of its target; and no file points at the design notes outside the repository.

usage: check_doc_links.py [REPO]     (default: the repository holding this script)
Prints one line per problem; exit 1 if any."""
import os
import re
import subprocess
import sys

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
# written in pieces so that this file does not match itself
OUTSIDE = [".." + "/shared", "/work" + "/shared"] + [name + ".md" for name in ("SEED", "DESIGN", "STYLE", "GPU")]


def repo_files(root, pattern=None):
    cmd = ["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    if pattern:
        cmd.append(pattern)
    out = subprocess.run(cmd, capture_output=True, check=True).stdout.decode()
    return sorted(f for f in set(out.split("\0")) if f and os.path.isfile(os.path.join(root, f)))


def prose_lines(text):
    """(line number, line) outside fenced code blocks, with inline code removed."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        marker = re.match(r"^\s{0,3}(```+|~~~+)", line)
        if marker:
            if fence is None:
                fence = marker.group(1)[0] * 3
            elif marker.group(1).startswith(fence):
                fence = None
            continue
        if fence is None:
            yield number, re.sub(r"`+[^`]*`+", "", line)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*|_{2,}", "", heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path, cache={}):
    if path not in cache:
        found, seen = set(), {}
        with open(path, encoding="utf-8") as f:
            for _, line in prose_lines(f.read()):
                m = HEADING.match(line)
                if m:
                    s = slug(m.group(2))
                    n = seen.get(s, 0)
                    seen[s] = n + 1
                    found.add(s if n == 0 else f"{s}-{n}")
        cache[path] = found
    return cache[path]


def check_links(root, md, problems):
    path = os.path.join(root, md)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    count = 0
    for number, line in prose_lines(text):
        targets = [m.group(1) for m in LINK.finditer(line)]
        m = REFERENCE.match(line)
        if m:
            targets.append(m.group(1))
        for target in targets:
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            count += 1
            where = f"{md}:{number}: link '{target}'"
            file_part, _, anchor = target.partition("#")
            resolved = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            if os.path.relpath(resolved, root).startswith(".."):
                problems.append(f"{where} leaves the repository")
                continue
            if not os.path.exists(resolved):
                problems.append(f"{where}: no such file {os.path.relpath(resolved, root)}")
                continue
            if anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
                problems.append(f"{where}: no heading '#{anchor}' in {os.path.relpath(resolved, root)}")
    return count


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), "..", ".."))
    problems = []
    mds = [f for f in repo_files(root) if f.endswith(".md")]
    links = sum(check_links(root, md, problems) for md in mds)
    for name in repo_files(root):
        try:
            with open(os.path.join(root, name), encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue  # binary files
        for number, line in enumerate(text.splitlines(), 1):
            for outside in OUTSIDE:
                if outside in line:
                    problems.append(f"{name}:{number}: refers to {outside}, which is not in the repository")
    for p in problems:
        print(f"check_doc_links: {p}")
    print(f"check_doc_links: {len(mds)} .md files, {links} relative links, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
