#!/usr/bin/env bash
# Install ckpt as a systemd service: a dedicated user, the folders, a starter config, the unit,
# and (unless told not to) enable and start it. Safe to run again: it creates only what is
# missing, never overwrites the config or the handler, and replaces the unit only when it
# changed. Run with --help for the options.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

user=ckpt
bin=""
config_dir=/etc/ckpt
data_dir=/srv/ckpt
state_dir=/var/lib/ckpt
feeds=()
enable=1
root=""

usage() {
  cat <<EOF
Usage: install-service.sh [options]

Sets up ckpt under systemd:
  - a system user and group (--user, default ckpt) with no login shell
  - DATA/inbox, DATA/done, DATA/dead owned by that user (--data-dir, default /srv/ckpt)
  - CONFIG_DIR/ckpt.config.json and CONFIG_DIR/handler.mjs, only if missing (--config-dir, default /etc/ckpt)
  - the unit: ckpt.service; or, with --feed NAME, the template ckpt@.service, one instance per
    feed: ckpt@NAME reads CONFIG_DIR/NAME.json, uses DATA/NAME/{inbox,done,dead} and keeps its
    database in /var/lib/ckpt/NAME (StateDirectory=ckpt/%i)
  - systemctl daemon-reload, then enable --now (skip with --no-enable)
The database goes to /var/lib/ckpt/ckpt.db (systemd's StateDirectory=ckpt), per feed to
/var/lib/ckpt/NAME/ckpt.db.

Options:
  --user NAME        service user and group (default: ckpt)
  --bin PATH         the ckpt command (default: ckpt on PATH); may be "NODE SCRIPT", e.g.
                     "/usr/bin/node /opt/ckpt/dist/cli/main.js"
  --config-dir DIR   where ckpt.config.json lives (default: /etc/ckpt)
  --data-dir DIR     inbox/, done/, dead/ go here; the service may write only here (default: /srv/ckpt)
  --feed NAME        a feed of its own (letters, digits, - and _); repeat for several. Installs the
                     template ckpt@.service and enables ckpt@NAME for each (default: ckpt.service)
  --no-enable        install files only; do not enable or start anything
  --root DIR         stage everything under DIR instead of / (packaging, tests): no user is
                     created, nothing is chowned, systemctl is not called
  -h, --help         this text

Safe to run again: existing config and handler are kept; the unit is replaced only if it changed.
EOF
}

die() {
  echo "install-service.sh: $*" >&2
  exit 64
}

while [ $# -gt 0 ]; do
  case "$1" in
    --user) user="${2:?--user needs a name}"; shift 2 ;;
    --bin) bin="${2:?--bin needs a path}"; shift 2 ;;
    --config-dir) config_dir="${2:?--config-dir needs a folder}"; shift 2 ;;
    --data-dir) data_dir="${2:?--data-dir needs a folder}"; shift 2 ;;
    --feed) feeds+=("${2:?--feed needs a name}"); shift 2 ;;
    --no-enable) enable=0; shift ;;
    --root) root="${2:?--root needs a folder}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

for f in ${feeds[@]+"${feeds[@]}"}; do
  case "$f" in '' | *[!A-Za-z0-9_-]*) die "--feed: expected a name of letters, digits, - and _, got '$f'" ;; esac
done
case "$config_dir$data_dir" in *' '* | *'#'*) die "folder names with spaces or '#' are not supported in unit files here" ;; esac
case "$config_dir" in /*) ;; *) die "--config-dir must be an absolute path" ;; esac
case "$data_dir" in /*) ;; *) die "--data-dir must be an absolute path" ;; esac

staged=0
if [ -n "$root" ]; then
  staged=1
  mkdir -p "$root"
  root="$(cd "$root" && pwd)"
elif [ "$(id -u)" -ne 0 ]; then
  die "run as root (sudo $0 ...), or pass --root DIR to stage the files somewhere else"
fi

if [ -z "$bin" ]; then
  if command -v ckpt >/dev/null 2>&1; then
    bin="$(command -v ckpt)"
  else
    die "no 'ckpt' on PATH: install it first (sudo npm install -g <this package>), or pass --bin PATH"
  fi
fi
bin_program="${bin%% *}"
if [ "$staged" -eq 0 ] && [ ! -x "$bin_program" ]; then
  die "--bin: $bin_program is not an executable file"
fi
case "$bin" in
  /home/* | /root/* | /run/user/*)
    echo "warning: $bin is under a home folder; the unit's ProtectHome=true hides it from the service." >&2
    echo "         Install ckpt system-wide (npm install -g) or copy it under /opt." >&2
    ;;
esac

say() { echo "  $*"; }

# --- user ---------------------------------------------------------------------------------
if [ "$staged" -eq 0 ]; then
  if getent passwd "$user" >/dev/null; then
    say "user $user: exists"
  else
    nologin="$(command -v nologin || echo /usr/sbin/nologin)"
    useradd --system --user-group --home-dir "$state_dir" --no-create-home --shell "$nologin" \
      --comment "ckpt file ingestion" "$user"
    say "user $user: created"
  fi
fi

# --- folders ------------------------------------------------------------------------------
make_dir() { # path mode owner
  local dir="$root$1"
  if [ -d "$dir" ]; then
    say "$1: exists"
  else
    mkdir -p "$dir"
    say "$1: created"
  fi
  chmod "$2" "$dir"
  if [ "$staged" -eq 0 ]; then chown "$3" "$dir"; fi
}
make_dir "$config_dir" 0755 "root:root"
make_dir "$data_dir" 0755 "root:root"

# --- handler (never overwritten) --------------------------------------------------------------
handler="$config_dir/handler.mjs"
if [ -e "$root$handler" ]; then
  say "$handler: exists, kept"
else
  install -m 0755 "$repo/scripts/example-handler.mjs" "$root$handler"
  say "$handler: example handler installed (counts CSV rows; replace it with yours)"
fi

# --- one setup: folders and config (never overwritten) -----------------------------------------
setup_one() { # config-file data-folder state-folder
  local config="$1" data="$2" state="$3"
  if [ "$data" != "$data_dir" ]; then make_dir "$data" 0755 "root:root"; fi
  for sub in inbox done dead; do make_dir "$data/$sub" 2770 "$user:$user"; done
  # systemd creates the StateDirectory at start; staged installs get it for completeness.
  if [ "$staged" -eq 1 ]; then make_dir "$state" 0750 "$user:$user"; fi
  if [ -e "$root$config" ]; then
    say "$config: exists, kept"
    return
  fi
  cat >"$root$config" <<EOF
{
  "database": "$state/ckpt.db",
  "watch": [{ "dir": "$data/inbox", "include": ["*.csv"], "fileType": "csv" }],
  "handler": { "command": ["node", "$handler", "{path}"], "timeoutMs": 600000 },
  "concurrency": 4,
  "onSuccess": { "moveTo": "$data/done" },
  "onDead": { "moveTo": "$data/dead" },
  "shutdownGraceMs": 10000,
  "retention": { "completed": "30d", "dead": "90d", "tombstones": "30d" },
  "log": { "level": "info", "format": "json" }
}
EOF
  chmod 0640 "$root$config"
  if [ "$staged" -eq 0 ]; then chown "root:$user" "$root$config"; fi
  say "$config: starter config written (edit the watch folders and the handler)"
}

if [ "${#feeds[@]}" -gt 0 ]; then
  if [ "$staged" -eq 1 ]; then make_dir "$state_dir" 0755 "root:root"; fi
  for f in "${feeds[@]}"; do setup_one "$config_dir/$f.json" "$data_dir/$f" "$state_dir/$f"; done
  config="$config_dir/%i.json"
else
  setup_one "$config_dir/ckpt.config.json" "$data_dir" "$state_dir"
  config="$config_dir/ckpt.config.json"
fi

# --- unit ---------------------------------------------------------------------------------
if [ "${#feeds[@]}" -gt 0 ]; then unit_name='ckpt@.service'; rw_dir="$data_dir/%i"; else unit_name='ckpt.service'; rw_dir="$data_dir"; fi
unit_dir="$root/etc/systemd/system"
mkdir -p "$unit_dir"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
# The shipped unit assumes the defaults; rewrite what was chosen differently. '|' is the sed
# delimiter, so paths (which may hold '/') need no escaping; '|' and '&' are refused here.
case "$bin$config$data_dir$user" in *'|'* | *'&'*) die "paths and names may not contain '|' or '&'" ;; esac
sed -E -e "s|^ExecStart=/usr/local/bin/ckpt run --config /etc/ckpt/(ckpt\.config\|%i)\.json\$|ExecStart=$bin run --config $config|" \
  -e "s|^ExecStartPre=/usr/local/bin/ckpt validate --config /etc/ckpt/(ckpt\.config\|%i)\.json\$|ExecStartPre=$bin validate --config $config|" \
  -e "s|^ReadWritePaths=/srv/ckpt(/%i)?\$|ReadWritePaths=$rw_dir|" \
  -e "s|^User=ckpt\$|User=$user|" \
  -e "s|^Group=ckpt\$|Group=$user|" \
  "$repo/config/$unit_name" >"$tmp"
if cmp -s "$tmp" "$unit_dir/$unit_name"; then
  say "$unit_dir/$unit_name: unchanged"
  changed=0
else
  install -m 0644 "$tmp" "$unit_dir/$unit_name"
  say "$unit_dir/$unit_name: installed"
  changed=1
fi

if command -v systemd-analyze >/dev/null 2>&1 && [ "$staged" -eq 0 ]; then
  systemd-analyze verify "$unit_dir/$unit_name" || echo "warning: systemd-analyze verify reported problems (above)" >&2
fi

# --- enable -------------------------------------------------------------------------------
if [ "${#feeds[@]}" -gt 0 ]; then
  units=()
  for f in "${feeds[@]}"; do units+=("ckpt@$f.service"); done
else
  units=(ckpt.service)
fi
if [ "$staged" -eq 1 ] || [ "$enable" -eq 0 ]; then
  say "not enabling (staged or --no-enable); to start: systemctl daemon-reload && systemctl enable --now ${units[*]}"
else
  systemctl daemon-reload
  systemctl enable "${units[@]}" >/dev/null
  if [ "$changed" -eq 1 ]; then
    systemctl restart "${units[@]}"
  else
    systemctl start "${units[@]}"
  fi
  say "enabled and started: ${units[*]}"
fi

# What to type next, for the first feed when there are several.
if [ "${#feeds[@]}" -gt 0 ]; then
  inbox="$data_dir/${feeds[0]}/inbox"
  config="$config_dir/${feeds[0]}.json"
else
  inbox="$data_dir/inbox"
fi
cat <<EOF

Next:
  drop a file:   cp some.csv $inbox/   (as a member of group $user, or root)
  status:        sudo -u $user $bin status --config $config
  logs:          journalctl -u 'ckpt*' -f
  config edited: systemctl reload ${units[*]}   (what needs a restart instead: docs/reload.md)
EOF
