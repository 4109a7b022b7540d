#!/usr/bin/env bash
# First boot of a deployed VM: get certified by the deployment machine's simpleserver, then fetch
# the named keys from its key-server into this VM's cryptstore. Safe to run on every boot: once
# certified and provisioned it exits 0 at once without contacting anyone.
#
# Exit status: 0 done; 3 a server stayed unreachable (or silent: a stopped one times out; or, the
# key-server, too slow for --deadline) after the retries; anything else is the
# failing program's own status (1 refused, 2 usage, 4 untrusted peer or integrity failure),
# never retried: the script fails closed.

# bash 4.4 or later: an older one stops at an empty array expanded under set -u ("${a[@]}"),
# part way, whatever was given. Said first, as a usage error (exit 2); under sh (dash), which reads
# this line as a command not found (hidden), it says to run it with bash. The expression is quoted:
# dash would take its ">=" for a redirection and make a file named "=" where the script was run.
(("BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] >= 404")) 2>/dev/null || { echo "first-boot: needs bash 4.4 or later, not ${BASH_VERSION:-this shell: run it with bash}" >&2; exit 2; }
# Run as sh by a bash that is sh (POSIX mode), a "." of a missing file would end it before its own words.
set +o posix
set -u

usage() {
  # Asked for (--help, exit 0): on standard output; after a mistake: on standard error.
  local to=2
  [ "${1:-2}" = 0 ] && to=1
  cat >&"$to" <<'USAGE'
usage: first-boot.sh --host ADDR --certifier-port PORT --keyserver-port PORT --keys "NAME..."
                     [--keyserver-host ADDR] --domain DOMAIN --policy-cert FILE --store DIR
                     [--platform simulated] --platform-dir DIR --measurement-file FILE
                     | --platform sev-snp [--tsm-dir DIR] [--vcek FILE]
                     [--server-measurement HEX...] [--retries N] [--max-delay SECONDS]
                     [--timeout SECONDS] [--deadline SECONDS]
                     [--passphrase-file FILE | --key-file FILE]     (default: --sealed;
                                                                      sev-snp needs one)

  --host              the deployment machine's address: simpleserver's, and key-server's unless
                      --keyserver-host names another (a host name, an IPv4 address, or an IPv6
                      address in brackets: [2001:db8::5])
  --certifier-port    its simpleserver port (8123 by convention)
  --keyserver-host    the key-server's address, where it runs elsewhere (in a cloud VM, as in
                      the README's Scenario 2); default: --host
  --keyserver-port    the key-server's port (8120 by convention)
  --keys              the resource names to fetch, separated by spaces; each is kept in the
                      cryptstore under its own name
  --domain            the policy domain (as in the policy certificate)
  --policy-cert       the policy certificate baked into the image
  --store             this VM's cryptstore (created on first boot)
  --platform          simulated (a TEST platform; the default) or sev-snp (the hardware reports
                      the measurement; sealing is not available there, so give --key-file or
                      --passphrase-file)
  --platform-dir      simulated: this VM's platform files (attest-key.pem, endorsement.bin)
  --measurement-file  simulated: this VM's measurement
  --tsm-dir           sev-snp: the configfs-tsm report directory (default: cert-utility's)
  --vcek              sev-snp: the VCEK (and ASK) fetched ahead of time, if the host attaches none
  --server-measurement  pin the key-server's measurement (recommended); several (repeated, or
                      separated by spaces or commas) while its replicas move to a new program
  --retries           attempts per step while a server is unreachable (default 8)
  --max-delay         cap of the exponential backoff between attempts (default 30)
  --timeout           how long each attempt waits for a server at each step (connecting, the
                      TLS handshake, each answer) before it counts as unreachable and is tried
                      again (default 10; the programs' --timeout)
  --deadline          how long each attempt of step 2 may take in all, however many keys
                      --keys names: connecting, the handshake and every answer, each inside
                      --timeout, but together no longer; one cut off is tried again as an
                      unreachable server is (default 60; key-client's --deadline)
  --passphrase-file   protect the cryptstore with the passphrase in FILE (scrypt) instead of sealing
                      it to this VM's platform and measurement
  --key-file          protect the cryptstore with the key in FILE instead of sealing it (at
                      least 32 random bytes: cert-utility new-key-file --out FILE)
  Environment: CERT_UTILITY, KEY_CLIENT name the programs (default: next to this script in ../cmd/bin).
USAGE
  exit "${1:-2}"
}

# The script's own folder, through any link to it (a link in /usr/local/bin, say).
here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
script_name=first-boot
# Part of the script: copied without it (into a VM image, say), the script went on without its
# checks and stopped on a wrong reason.
. "$here/common.sh" || { echo "first-boot: cannot read $(printf '%q' "$here/common.sh"), which it needs beside it: copy scripts/common.sh with it" >&2; exit 1; }
stopped_so='not certifying' # until its checks are done
stop_traps
CERT_UTILITY=${CERT_UTILITY:-$here/../cmd/bin/cert-utility.js}
KEY_CLIENT=${KEY_CLIENT:-$here/../cmd/bin/key-client.js}

host= khost= cport= kport= keys= domain= policy_cert= store= platform=simulated platform_dir= measurement_file=
tsm_dir= vcek= pin_values=() retries=8 max_delay=30 timeout=() deadline=60 protection=(--sealed)
seen=' '
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage 0 ;;
    --*) [ $# -ge 2 ] || { echo "first-boot: $1 needs a value" >&2; usage; } ;;
  esac
  # Each flag once (the last would win silently: --keys A --keys B fetched only B), and one
  # protection: --key-file or --passphrase-file.
  flag=$1
  case "$flag" in --key-file|--passphrase-file) flag=--key-file/--passphrase-file ;; esac
  # (--server-measurement may be repeated, as key-client's: each adds measurements to the pin.)
  [ "$flag" = --server-measurement ] || case "$seen" in *" $flag "*) echo "first-boot: $flag is given twice; it takes one value" >&2; usage ;; esac
  seen="$seen$flag "
  case "$1" in
    --host) host=$2; shift 2 ;;
    --certifier-port) cport=$2; shift 2 ;;
    --keyserver-host) khost=$2; shift 2 ;;
    --keyserver-port) kport=$2; shift 2 ;;
    --keys) keys=$2; shift 2 ;;
    --domain) domain=$2; shift 2 ;;
    --policy-cert) policy_cert=$2; shift 2 ;;
    --store) store=$2; shift 2 ;;
    --platform) platform=$2; shift 2 ;;
    --platform-dir) platform_dir=$2; shift 2 ;;
    --tsm-dir)
      # shellcheck disable=SC2034 # read as ${!name}, with the other platform flags, below
      tsm_dir=$2; shift 2 ;;
    --vcek) vcek=$2; shift 2 ;;
    --measurement-file) measurement_file=$2; shift 2 ;;
    --server-measurement) pin_values+=("$2"); shift 2 ;;
    --retries) retries=$2; shift 2 ;;
    --max-delay) max_delay=$2; shift 2 ;;
    --timeout) timeout=(--timeout "$2"); shift 2 ;; # checked by both programs' --check-only below
    --deadline) deadline=$2; shift 2 ;; # checked by key-client's --check-only below
    --passphrase-file) protection=(--passphrase-file "$2"); shift 2 ;;
    --key-file) protection=(--key-file "$2"); shift 2 ;;
    *) echo "first-boot: unknown argument $1" >&2; usage ;;
  esac
done
for pair in host:host cport:certifier-port kport:keyserver-port keys:keys domain:domain policy_cert:policy-cert store:store; do
  name=${pair%%:*}
  [ -n "${!name}" ] || { echo "first-boot: missing --${pair#*:}" >&2; usage; }
done
# Whether a flag was given, empty or not: an empty --tsm-dir or --vcek (a unit's variable set to
# nothing) is passed on, and refused by the programs, never taken for one not given.
given() { case "$seen" in *" $1 "*) return 0 ;; esac; return 1; }
# The platform flags as given, checked together by cert-utility init-trust --check-only below
# (which go together is its rule: --platform-dir and --measurement-file for simulated, --tsm-dir
# and --vcek for sev-snp, which cannot seal the store yet).
platform_args=(--platform "$platform")
for pair in platform-dir:platform_dir measurement-file:measurement_file tsm-dir:tsm_dir vcek:vcek; do
  name=${pair#*:}
  if given "--${pair%%:*}"; then platform_args+=("--${pair%%:*}" "${!name}"); fi
done
# Whole numbers in range, written plainly: bash would read "08" as bad octal and abort the step
# mid-way (then carry on as if it had succeeded), and a huge or empty value would retry for ever.
matches "$retries" '^[1-9][0-9]{0,2}$' || { echo "first-boot: --retries takes a whole number from 1 to 999, not \"$retries\"" >&2; exit 2; }
matches "$max_delay" '^[1-9][0-9]{0,3}$' || { echo "first-boot: --max-delay takes a whole number of seconds from 1 to 9999, not \"$max_delay\"" >&2; exit 2; }
# Given empty (a unit's variable set to nothing), --keyserver-host is refused (by key-client, as
# the address ":PORT"), never taken for --host.
given --keyserver-host || khost=$host
# Several pinned measurements (each value may hold some, separated by spaces or commas) while
# replicas move to a new key-server program: the old measurement and the new one, both pinned.
# Each is key-client's --server-measurement, checked by key-client with the rest below; a value
# that holds none (a unit's variable set to nothing) is refused here: given, the pin must be a
# measurement, never silently none.
pin=()
for v in "${pin_values[@]}"; do
  set -f
  # shellcheck disable=SC2206 # split on white space on purpose, globbing off
  split=(${v//,/ })
  set +f
  [ ${#split[@]} -gt 0 ] || { echo "first-boot: --server-measurement takes the key-server's measurement, 64 or 96 hex digits (several separated by spaces or commas), not \"\" (an empty value: a unit's variable set to nothing?)" >&2; usage; }
  for m in "${split[@]}"; do pin+=(--server-measurement "$m"); done
done
# Every file the programs will read, when it is there, is a regular file (or a link to one): given a
# FIFO they would wait in open() for ever, and a directory or a device would fail only mid-way.
# (One that is missing is left to the programs, which name it; a store already holding every key
# needs none of them.)
inputs=("--policy-cert:$policy_cert" "--measurement-file:$measurement_file" "--vcek:$vcek")
[ "${protection[0]}" = --sealed ] || inputs+=("${protection[0]}:${protection[1]}")
[ -z "$platform_dir" ] || inputs+=("--platform-dir:$platform_dir/attest-key.pem" "--platform-dir:$platform_dir/endorsement.bin")
for pair in "${inputs[@]}"; do
  flag=${pair%%:*} file=${pair#*:}
  [ -n "$file" ] && [ -e "$file" ] && [ ! -f "$file" ] || continue
  if [ -p "$file" ]; then kind="a FIFO"; elif [ -S "$file" ]; then kind="a socket"; elif [ -d "$file" ]; then kind="a directory"; else kind="a device"; fi
  echo "first-boot: $flag: $(printf '%q' "$file") is $kind, not a regular file" >&2; exit 2
done
# The programs, found before anything runs: a missing one would otherwise look like a store that
# cannot be read, or fail only after certifying.
for prog in "$CERT_UTILITY" "$KEY_CLIENT"; do
  [ -f "$prog" ] && [ -x "$prog" ] || command -v -- "$prog" >/dev/null 2>&1 || {
    echo "first-boot: cannot run $(printf '%q' "$prog") (CERT_UTILITY and KEY_CLIENT name the programs)" >&2; exit 1; }
done
# The names, split on white space without glob expansion ("vhd/*" is a name, not a pattern).
set -f
# shellcheck disable=SC2206 # as above
names=($keys)
set +f
[ ${#names[@]} -gt 0 ] || { echo "first-boot: --keys names no key" >&2; exit 2; }
# A name given twice is one key (key-client fetches it once): its lines name it once too.
declare -A named=()
unique=()
for k in "${names[@]}"; do
  [ -n "${named[$k]+given}" ] || { named[$k]=1; unique+=("$k"); }
done
names=("${unique[@]}")
log() { printf 'first-boot: %s\n' "$*" >&2; }

# Key names as this script's own lines show them: printable ASCII as it is, anything else (a
# control character, a right-to-left override, any non-ASCII letter) quoted and escaped, so that
# nothing a name holds reaches the console raw.
# (A subshell: restoring a locale that is not installed, as `local LC_ALL` would, warns.)
shown_names() (
  LC_ALL=C
  local n out=
  for n in "$@"; do
    if [[ $n =~ ^[\ -~]+$ ]]; then out+="${out:+ }$n"; else out+="${out:+ }$(printf '%q' "$n")"; fi
  done
  printf '%s' "$out"
)

for k in "${names[@]}"; do
  # This script's own rule: a name in --keys that begins with "-" is a flag put in the wrong place.
  case "$k" in -*) log "--keys names \"$(shown_names "$k")\", which begins with \"-\": a key name, not an option"; exit 2 ;; esac
done

# Runs a command; retries with exponential backoff only while it exits 3 (unreachable, or a
# server that took the connection and said nothing for --timeout: stopped, say, TIMEOUT; or, for
# key-client, answers too slow for the attempt's --deadline, DEADLINE). Its lines name none of
# them: the program's own line just above says which (its code in brackets), and a line here
# saying "unreachable" beneath a DEADLINE would send the operator to the network for a slow server.
with_retries() {
  local what=$1; shift
  local attempt=1 delay=1 rc
  while :; do
    "$@"; rc=$?
    [ $rc -eq 0 ] && return 0
    exit_if_stopped $rc
    if [ $rc -ne 3 ]; then log "$what failed (exit $rc); not retrying"; return $rc; fi
    if [ $attempt -ge "$retries" ]; then log "$what: the server still unreachable or not answering in time after $attempt attempt$([ "$attempt" -eq 1 ] || echo s) (the line above says which); giving up"; return 3; fi
    log "$what: the server unreachable or not answering in time (attempt $attempt of $retries; the line above says which); retrying in ${delay}s"
    sleep "$delay"
    attempt=$((attempt + 1)); delay=$((delay * 2)); [ $delay -gt "$max_delay" ] && delay=$max_delay
  done
}

store_args=(--store "$store" "${protection[@]}" "${platform_args[@]}")
shown_store=$(shown_names "$store") # as its own lines show it
# The two steps' commands, but for the names fetched: asked with --check-only below, then run.
init_trust=(init-trust --domain "$domain" --policy-cert "$policy_cert" --server "$host:$cport" "${store_args[@]}" "${timeout[@]}")
# Each attempt of step 2 bounded in all (--deadline): a key-server answering each key just inside
# --timeout would otherwise make it last as many times --timeout as there are keys.
retrieve=(retrieve --server "$khost:$kport" --domain "$domain" --policy-cert "$policy_cert" "${pin[@]}" "${store_args[@]}" "${timeout[@]}" --deadline "$deadline")

# Every flag the two steps take, asked of the programs themselves with the very commands the steps
# run (--check-only: parsed and checked as a run does, reading and connecting to nothing): each
# would refuse a bad one only when its step came, key-client's after this machine is certified.
# That is the addresses and ports (HOST:PORT, a host name or IP address), the pinned measurements,
# the domain, and every name retrieve takes into the cryptstore (its rule for names, and none where
# the cryptstore keeps an identity or a key-server its storage key). A refusal names the program's
# flag and the value, escaped (exit 2). Both are asked on every run, a boot that holds every key
# too (its flags are the unit's: a mistake in them, the platform flags that do not go together,
# would otherwise pass unseen until a key went missing), while the store is read below: the three
# programs start at once, and each check is waited for before anything is made of the answers.
"$KEY_CLIENT" "${retrieve[0]}" --check-only "${retrieve[@]:1}" -- "${names[@]}" >/dev/null &
checking_retrieve=$!
"$CERT_UTILITY" "${init_trust[0]}" --check-only "${init_trust[@]:1}" >/dev/null &
checking_init=$!
# A check's answer, its status: a refusal (2) or a program that could not answer, said in a line.
checked() {
  local pid=$1 what=$2 server=$3 rc
  wait "$pid"; rc=$?
  [ $rc -ne 0 ] || return 0
  exit_if_stopped $rc
  if [ $rc -eq 2 ]; then log "$what would refuse the flags this run gives it (above; its --server is $server); not certifying"
  else log "$what could not check the flags (exit $rc, above); not certifying"; fi
  return $rc
}

# Keys already in the store need neither a certificate nor a server: a reboot after success
# stays offline, whatever the clock says (a certificate checked against a wrong clock would look
# expired or not yet valid, and send the VM to be certified again for nothing).
missing=()
held= rc=0
# (With --json an error is a JSON document on stdout instead, with its code.)
[ ! -e "$store" ] || { held=$("$CERT_UTILITY" list-items --json "${store_args[@]}" 2>/dev/null); rc=$?; }
exit_if_stopped $rc
checked "$checking_retrieve" 'key-client retrieve' '--keyserver-host:--keyserver-port'
checked_retrieve=$?
checked "$checking_init" 'cert-utility init-trust' '--host:--certifier-port' || exit $?
[ $checked_retrieve -eq 0 ] || exit $checked_retrieve
# A store that is there but cannot be read (damaged: INTEGRITY; locked; the wrong key) is not
# one to certify again over: say so and stop, whatever the servers could do.
if [ $rc -ne 0 ]; then
  case "$held" in
    *'"code":"STORE_NOT_FOUND"'*) held= ;; # an interrupted first creation: init-trust makes it again
    *)
      # The JSON document is for programs: the operator reads the program's own error, in
      # words, from the same read made again without --json.
      "$CERT_UTILITY" list-items "${store_args[@]}" >/dev/null
      case "$held:${protection[0]}" in
        *'"protection":'*) log "the cryptstore $shown_store is protected another way than this run was given (above); not certifying again over it (exit $rc)" ;;
        *'"code":"WRONG_KEY"'*:--sealed)
          # Sealed, but not to this image's measurement: most likely the image that made it,
          # before an update. This image can never open it, and certifying anew cannot change
          # that. (A store protected another way says so: "protection" above.)
          aside=${store%"${store##*[!/]}"}.sealed-$(date -u +%Y%m%dT%H%M%SZ)
          log "the cryptstore $shown_store is sealed to another measurement (or platform) than this VM's: most likely an earlier image made it, and an image update changed the measurement. This image cannot read the keys it holds; not certifying again over it (exit $rc)."
          log "to certify this image and fetch its keys again, move the store aside (keep it: the earlier image can still open it) and run first-boot again: mv $(printf '%q' "$store") $(printf '%q' "$aside")" ;;
        *) log "the cryptstore $shown_store could not be opened (exit $rc: see above); not certifying again over it" ;;
      esac
      exit $rc ;;
  esac
fi
for k in "${names[@]}"; do
  # As list-items --json writes the tag: JSON escapes a backslash and a quote.
  j=${k//\\/\\\\}; j=${j//\"/\\\"}
  case "$held" in *"\"tag\":\"$j\""*) ;; *) missing+=("$k") ;; esac
done
if [ ${#missing[@]} -eq 0 ]; then
  log "every key is already in the cryptstore; nothing to do"
  exit 0
fi

stopped_so=
log "step 1/2: certification by $host:$cport"
# A certificate only due for renewal that cannot be renewed now still serves: init-trust warns
# (until when it is valid) and exits 0, and the keys are fetched with it.
with_retries "init-trust against $host:$cport" "$CERT_UTILITY" "${init_trust[@]}" >&2 || exit $?

log "step 2/2: fetching $(shown_names "${missing[@]}") from $khost:$kport"
with_retries "retrieve from $khost:$kport" "$KEY_CLIENT" "${retrieve[@]}" -- "${missing[@]}" >&2 || exit $?
log "done: $(shown_names "${missing[@]}") kept in $shown_store"
