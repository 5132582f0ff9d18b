#!/usr/bin/env bash
# Says plainly which prerequisite is missing and how to install it; exits 1 if any is.
missing=0
say() { echo "missing: $1"; echo "  install: $2"; missing=1; }

if ! command -v python3 >/dev/null 2>&1; then
  say "Python 3.11+" "apt-get install -y python3 python3-venv  (or https://www.python.org/downloads/)"
elif ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  say "Python 3.11+ (found $(python3 --version 2>&1))" "install Python 3.11 or newer and put it first on PATH as python3"
elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  say "Python's venv module" "apt-get install -y python3-venv"
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "Node.js and npm (they install DynamoDB Local)" "apt-get install -y nodejs npm  (or https://nodejs.org/)"
fi
if ! command -v java >/dev/null 2>&1; then
  say "Java 17+ (DynamoDB Local runs on it)" "apt-get install -y openjdk-17-jre-headless"
else
  major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  if [ -z "$major" ] || [ "$major" -lt 17 ]; then
    say "Java 17+ (found: $(java -version 2>&1 | head -1))" "apt-get install -y openjdk-17-jre-headless"
  fi
fi
exit $missing
