#!/usr/bin/env bash
# `make lock`: regenerate the hash-pinned lock files from their inputs.
#   requirements.lock          every third-party package of the repo virtualenv (make install, CI):
#                              requirements-dev.txt + the dependencies of every local package
#                              given as arguments (the Makefile passes PACKAGES), + pip and
#                              setuptools (the editable installs build without isolation).
#   requirements-runtime.lock  what the service images need (deploy/Dockerfile): the dependencies
#                              of contracts, libs/common and services/*, at the same versions
#                              (resolved with requirements.lock as constraints).
# The local packages stay editable `-e` installs and are never written into a lock file.
# Universal resolution for CPython 3.11 (the CI machine's and the images' Python).
set -euo pipefail
cd "$(dirname "$0")/../.."
UV=${UV:-.venv/bin/uv}
[ -x "$UV" ] || { echo "make lock: $UV missing (it is in requirements-dev.txt: make install)" >&2; exit 1; }
[ "$#" -gt 0 ] || { echo "usage: tools/lock/compile.sh PACKAGE_DIR..." >&2; exit 2; }

name_of() {  # the [project] name of a package directory
  python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1] + "/pyproject.toml", "rb"))["project"]["name"])' "$1"
}

common=(--universal --python-version 3.11 --generate-hashes --quiet
        --custom-compile-command "make lock")
no_emit=()
for dir in "$@"; do no_emit+=(--no-emit-package "$(name_of "$dir")"); done

dev_in=.lock-dev.in
runtime_in=.lock-runtime.in
trap 'rm -f "$dev_in" "$runtime_in"' EXIT
{
  echo "-r requirements-dev.txt"
  echo "pip>=25"
  echo "setuptools>=80"
  for dir in "$@"; do echo "-e ./$dir"; done
} > "$dev_in"
"$UV" pip compile "${common[@]}" "${no_emit[@]}" -o requirements.lock "$dev_in"

{
  echo "pip>=25"
  echo "setuptools>=80"
  for dir in "$@"; do
    case "$dir" in contracts | libs/common | services/*) echo "-e ./$dir" ;; esac
  done
} > "$runtime_in"
"$UV" pip compile "${common[@]}" "${no_emit[@]}" -c requirements.lock \
  -o requirements-runtime.lock "$runtime_in"
echo "requirements.lock: $(grep -c '^[a-z0-9]' requirements.lock) packages;" \
  "requirements-runtime.lock: $(grep -c '^[a-z0-9]' requirements-runtime.lock) packages"
