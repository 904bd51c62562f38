#!/usr/bin/env sh
# Write the docker secrets compose mounts (one file each), asking for the values you must give
# and generating the rest. Files are mode 0440, group 10001: the containers' user reads them,
# other host users do not. Existing files are kept; delete one to set it again.
set -eu
cd "$(dirname "$0")"
umask 077
put() {  # put NAME VALUE
  [ -e "$1" ] && return 0
  printf '%s' "$2" > "$1"
  chmod 0440 "$1"
  chgrp 10001 "$1" 2>/dev/null || echo "note: chgrp 10001 $1 needs root; or chmod 0444 it" >&2
}
ask() {  # ask NAME PROMPT
  [ -e "$1" ] && return 0
  printf '%s: ' "$2" >&2
  stty -echo 2>/dev/null || true; read -r value; stty echo 2>/dev/null || true; echo >&2
  put "$1" "$value"
}
random() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
ask teacher_api_key "Teacher API key (e.g. your OpenAI key)"
put admin_token "$(random)"
put api_keys "$(random)"
put grafana_admin_password "$(random)"
put hf_token ""
put postgres_password "$(random)"
put postgres_dsn "postgresql://${POSTGRES_USER:-distill}:$(cat postgres_password)@postgres:5432/${POSTGRES_DB:-distill}"
put distill_store "$(cat postgres_dsn)?data_path=/data/lake"  # the CLI's --store in the fleet
echo "secrets in $(pwd); your apps' API key: $(cat api_keys 2>/dev/null || echo '(root-only: sudo cat api_keys)')" >&2
