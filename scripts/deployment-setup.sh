#!/usr/bin/env bash
# Prepares a deployment machine: the policy key and certificate, the (simulated) platform keys,
# the measurements of the programs to admit, the signed policy, and key-server's ACL (the
# key-client's program stores keys, the VM images only retrieve them). Prints the README's next
# steps for it, ready to paste: simpleserver; key-server certified, then started with the ACL;
# key-client certified, then storing keys. Refuses to overwrite an existing setup.

# bash 4.4 or later: an older one stops at an empty array expanded under set -u ("${a[@]}"),
# part way, whatever was given. Said first, as a usage error (exit 2); under sh (dash), which reads
# this line as a command not found (hidden), it says to run it with bash. The expression is quoted:
# dash would take its ">=" for a redirection and make a file named "=" where the script was run.
(("BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] >= 404")) 2>/dev/null || { echo "deployment-setup: needs bash 4.4 or later, not ${BASH_VERSION:-this shell: run it with bash}" >&2; exit 2; }
# Run as sh by a bash that is sh (POSIX mode), a "." of a missing file would end it before its own words.
set +o posix
set -eu

usage() {
  # Asked for (--help, exit 0): on standard output; after a mistake: on standard error.
  local to=2
  [ "${1:-2}" = 0 ] && to=1
  cat >&"$to" <<'USAGE'
usage: deployment-setup.sh --dir DIR --domain DOMAIN --measure FILE [--measure FILE ...]
                           [--trust-measurement HEX ...] [--alg p256|p384|rsa2048] [--policy-days N]
                           [--trust-amd-root milan|genoa|turin ... --snp-min-tcb BL:TEE:SNP:UCODE
                            --snp-min-tcb turin=FMC:BL:TEE:SNP:UCODE [--snp-property P ...]
                            [--snp-any-launch-tcb]]

  --dir                where to put everything (created; must not hold a setup already)
  --domain             the policy domain, e.g. datica
  --measure            a program (or VM image) whose SHA-256 measurement the policy trusts; give
                       the key-server's and key-client's programs too, so they can be certified
                       (the commands printed at the end take theirs by name: one file whose
                       name holds "key-server", one "key-client"); DIR/acl.json, key-server's
                       ACL, lets the key-client's store keys and every other but the
                       key-server's (the VM images) only retrieve them
  --trust-measurement  a measurement computed elsewhere (e.g. a SEV-SNP launch digest: 96 hex
                       digits, from sev-snp-measure)
  --trust-amd-root     SEV-SNP VMs: trust AMD's root for this product (repeatable); needs
                       --snp-min-tcb, the lowest firmware TCB accepted, reported and launched
                       under: BL:TEE:SNP:UCODE for milan and genoa (or milan=BL:TEE:SNP:UCODE
                       and genoa=BL:TEE:SNP:UCODE, one for each), turin=FMC:BL:TEE:SNP:UCODE
                       for turin (each form once)
  --snp-property       another SEV-SNP requirement, passed to make-policy's --snp-property
                       (repeatable), e.g. guest-svn>=2, or turin:launch-tcb-snp>=3 for one
                       product's LAUNCH_TCB minimum, above its --snp-min-tcb level, beside
                       roots of both TCB layouts
  --snp-any-launch-tcb passed to make-policy (no value): hold only REPORTED_TCB to --snp-min-tcb,
                       not LAUNCH_TCB too, admitting VMs launched under older firmware
  --alg                the policy key's algorithm (default p256)
  --policy-days        how long the policy's claims last (default 365: sign a new policy
                       before then, or simpleserver refuses every machine)
  The simulated platform's keys are made either way: the deployment machine's own key-server
  and key-client are certified with them.
  Environment: CERT_UTILITY, KEY_SERVER name the programs (default: next to this script in
  ../cmd/bin; key-server check-acl checks the ACL written, as serve --acl will read it).
USAGE
  exit "${1:-2}"
}

# The script's own folder, through any link to it (a link in /usr/local/bin, say).
here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
script_name=deployment-setup
# Part of the script: copied without it (into a VM image, say), the script went on without its
# checks and stopped on a wrong reason.
. "$here/common.sh" || { echo "deployment-setup: cannot read $(printf '%q' "$here/common.sh"), which it needs beside it: copy scripts/common.sh with it" >&2; exit 1; }
# Stopped while it checks what it was given: it has made nothing yet (from the first thing it
# makes, the traps below remove what it made).
stopped_so='nothing made'
stop_traps
CERT_UTILITY=${CERT_UTILITY:-$here/../cmd/bin/cert-utility.js}
KEY_SERVER=${KEY_SERVER:-$here/../cmd/bin/key-server.js}
dir= domain= alg=p256 days=365
measure=() trust=() amd=() min_tcb=() snp_property=() any_launch=()
seen=' '
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage 0 ;;
    --snp-any-launch-tcb) ;; # the one flag without a value
    --*) [ $# -ge 2 ] || { echo "deployment-setup: $1 needs a value" >&2; usage; } ;;
  esac
  # A flag of one value once (the last would win silently); --measure, --trust-*, --snp-* repeat.
  case "$1" in
    --measure|--trust-measurement|--trust-amd-root|--snp-min-tcb|--snp-property) ;; # make-policy refuses a --snp-min-tcb form twice
    --snp-any-launch-tcb) ;; # no value to differ: given twice, it says the same
    *) case "$seen" in *" $1 "*) echo "deployment-setup: $1 is given twice; it takes one value" >&2; usage ;; esac
       seen="$seen$1 " ;;
  esac
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --domain) domain=$2; shift 2 ;;
    --measure) measure+=("$2"); shift 2 ;;
    --trust-measurement) trust+=("$2"); shift 2 ;;
    --alg) alg=$2; shift 2 ;;
    --policy-days) days=$2; shift 2 ;;
    --trust-amd-root) amd+=(--trust-amd-root "$2"); shift 2 ;;
    --snp-min-tcb) min_tcb+=(--snp-min-tcb "$2"); shift 2 ;; # given empty: make-policy refuses it
    --snp-property) snp_property+=(--snp-property "$2"); shift 2 ;; # checked by make-policy
    --snp-any-launch-tcb) any_launch=(--snp-any-launch-tcb); shift ;; # make-policy warns of it
    *) echo "deployment-setup: unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$dir" ] || { echo "deployment-setup: --dir is missing or empty" >&2; usage; }
[ -n "$domain" ] || { echo "deployment-setup: --domain is missing or empty" >&2; usage; }
for f in ${measure[@]+"${measure[@]}"}; do [ -n "$f" ] || { echo "deployment-setup: a --measure is empty" >&2; usage; }; done
# The commands that make the policy key and the policy, as they run below once $dir is known to be
# a private directory (there named by its physical path). Their flags (--domain, --alg; the
# trusted measurements, --trust-amd-root, --snp-*, --policy-days as make-policy's --days) are
# asked of cert-utility first with --check-only: parsed and checked by its own rules as a run does,
# reading and writing nothing. It would refuse a bad one only once the directory and a key were made.
policy_key_args() {
  policy_key=(generate-policy-key --domain "$domain" --alg "$alg" --key-out "$1/policy-key.pem" --cert-out "$1/policy-cert.pem")
}
policy_args() {
  local m
  policy=(make-policy --policy-key "$1/policy-key.pem" --policy-cert "$1/policy-cert.pem" --trust-platform "$1/platform/platform-cert.pem"
    "${amd[@]}" "${min_tcb[@]}" "${snp_property[@]}" "${any_launch[@]}" --days "$days" --out "$1/policy.bin")
  for m in "${@:2}"; do policy+=(--trust-measurement "$m"); done
}
# A refusal says why, naming the flag and the value, escaped (exit 2), above a line saying which of
# this script's flags the command's are (WHERE); any other status is a program that did not run.
check() {
  local where=$1; shift
  "$CERT_UTILITY" "$1" --check-only "${@:2}" >/dev/null && return
  local rc=$?
  exit_if_stopped $rc
  if [ $rc -eq 2 ]; then echo "deployment-setup: cert-utility $1 would not take the flags given (above${where:+; $where}); nothing made" >&2
  else echo "deployment-setup: could not ask $(printf '%q' "$CERT_UTILITY") to check the flags (exit $rc, above; CERT_UTILITY names the program); nothing made" >&2; fi
  exit $rc
}
policy_key_args "$dir"
check '' "${policy_key[@]}"
[ ${#measure[@]} -gt 0 ] || [ ${#trust[@]} -gt 0 ] || { echo "deployment-setup: name at least one --measure or --trust-measurement" >&2; usage; }
# make-policy's flags too, before a file is measured (a VM image takes a while to read through):
# with the --trust-measurement values given, or, while there are none yet, 64 zeros standing in
# for the measurements make-policy needs. Below, it is asked again only where a measurement taken
# is one named already.
early=("${trust[@]}")
[ ${#early[@]} -gt 0 ] || early=(0000000000000000000000000000000000000000000000000000000000000000)
policy_args "$dir" "${early[@]}"
check "its --days is --policy-days, its --trust-measurement each --trust-measurement" "${policy[@]}"
# Paths are printed in commands to paste: one holding a control character (a newline would end a
# comment line and start a command) is refused, as are names cert-utility would take for flags.
has_control() { [[ "$1" == *[[:cntrl:]]* ]]; }
case "$dir" in -*) dir=./$dir ;; esac # never taken for an option (stat, cd)
if has_control "$dir"; then echo "deployment-setup: --dir holds a control character (a newline, say); name another directory" >&2; exit 2; fi
# Present (or a dangling link) already: never written over, and never removed by a failed run.
# What to do instead: a new setup goes elsewhere, and one is changed as the README says.
other_setup='For a new setup give another --dir; to trust a new measurement in this one, make its policy again as the README'"'"'s "Upgrading" says ("Trusting a new measurement")'
refuse_present() {
  if [ -e "$1" ] || [ -L "$1" ]; then echo "deployment-setup: $dir already holds ${2:-${1#"$dir/"}}; not overwriting. $other_setup" >&2; exit 1; fi
}
refuse_present "$dir/policy-key.pem" 'a policy key'
refuse_present "$dir/policy-cert.pem"
if [ -L "$dir/measurements" ] || { [ -e "$dir/measurements" ] && [ ! -d "$dir/measurements" ]; }; then
  echo "deployment-setup: $dir/measurements is there and is not a directory; not touching it" >&2; exit 1
fi
# Every input checked before any key is made, so a mistake leaves nothing to clean up.
for f in platform/platform-key.pem platform/platform-cert.pem platform/attest-key.pem platform/endorsement.bin policy.bin acl.json; do
  refuse_present "$dir/$f"
done
names=()
for f in "${measure[@]}"; do
  if has_control "$f"; then echo "deployment-setup: a --measure file name holds a control character (a newline, say); rename it" >&2; exit 2; fi
  [ -f "$f" ] && [ -r "$f" ] || { echo "deployment-setup: --measure $f: no such readable file" >&2; exit 1; }
  name=$(basename -- "$f")
  for n in "${names[@]}"; do
    [ "$n" != "$name" ] || { echo "deployment-setup: two --measure files are named $name (measurements/$name.measurement would clash)" >&2; exit 1; }
  done
  if [ -e "$dir/measurements/$name.measurement" ] || [ -L "$dir/measurements/$name.measurement" ]; then echo "deployment-setup: $dir/measurements/$name.measurement exists; not overwriting. $other_setup" >&2; exit 1; fi
  names+=("$name")
done
# Every file measured once, in one run, one line each ("HEX" alone for one file, "HEX  NAME" for
# several, a name's newline escaped): the measurement files, the policy and the ACL below are made
# from these, never by reading a file (a VM image takes a while) again.
measured=()
if [ ${#measure[@]} -gt 0 ]; then
  lines=$("$CERT_UTILITY" measure -- "${measure[@]}") || { rc=$?; exit_if_stopped $rc; exit 1; }
  while read -r m _; do measured+=("$m"); done <<<"$lines"
fi
# make-policy, asked above with every other value it will be given, also refuses a measurement
# named twice (two copies of one program, or a --trust-measurement of a file also measured): where
# one is (hex digits, compared in either case), it is asked again with every measurement, before
# any key is made, and says which in its own words.
if [ -n "$(printf '%s\n' "${trust[@]}" "${measured[@]}" | LC_ALL=C tr A-F a-f | LC_ALL=C sort | uniq -d)" ]; then
  policy_args "$dir" "${trust[@]}" "${measured[@]}"
  check "its --trust-measurement is each --trust-measurement and --measure file's measurement, its --days --policy-days" "${policy[@]}"
fi

log() { printf 'deployment-setup: %s\n' "$*" >&2; }
# What this run makes, removed (newest first) if it stops before the end: a failed step or a
# signal leaves no half setup behind, which a new run would refuse to go on from.
made=()
finished=no
# Files go; a directory goes only once it is empty (what another run put there stays).
undo() {
  if [ "$finished" = yes ] || [ ${#made[@]} -eq 0 ]; then return; fi
  for ((i = ${#made[@]} - 1; i >= 0; i--)); do
    # (|| true: undo runs under set -e, and a directory holding another's files is no failure)
    if [ -d "${made[i]}" ] && [ ! -L "${made[i]}" ]; then rmdir -- "${made[i]}" 2>/dev/null || true; else rm -f -- "${made[i]}" || true; fi
  done
  log "stopped before the end: removed what this run had made; nothing is left to clean up"
}
trap undo EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# A directory made here is ours to keep private; one that was there keeps its mode. Made with
# one mkdir, so of two runs started together only the one that made it counts it as its own.
made_dir=no
# Folders above it that mkdir -p makes are writable by no one else whatever the umask (under
# umask 000 they were 0777, which the check below then refused, leaving them behind).
if [ ! -e "$dir" ] && [ ! -L "$dir" ]; then
  why=$(umask "$(printf '%04o' $((8#$(umask) | 8#022)))" && mkdir -p -- "$(dirname -- "$dir")" 2>&1 && mkdir -m 700 -- "$dir" 2>&1) && made_dir=yes
fi
# A directory, and this user's alone, as is every directory above it (root's may be too, and a
# sticky one, /tmp, may be writable by all: no one else can rename what is ours in it). Another
# user who could write in it, or move it and put another in its place, could put their own
# platform key where the policy trusts it, or replace the policy key. A symbolic link must be
# this user's; from here on the directory is named by its physical path, which the printout uses.
refuse_dir() {
  log "$1"
  [ "$made_dir" = no ] || rmdir -- "$dir" 2>/dev/null || true
  exit 1
}
if [ ! -d "$dir" ]; then log "cannot use $dir as the setup directory: ${why:-it is not a directory}"; exit 1; fi
me=$(id -u)
if [ -L "$dir" ] && [ "$(stat -c %u -- "$dir")" != "$me" ]; then refuse_dir "$dir is a symbolic link of another user's, who could point it elsewhere; name the directory itself"; fi
real=$(CDPATH= cd -P -- "$dir" && pwd -P) || refuse_dir "cannot use $dir as the setup directory"
p=$real
while :; do
  read -r owner mode < <(stat -c '%u %a' -- "$p")
  mode=$(printf %04o "$((8#$mode))") # 0755, as the programs' messages and stat's own output write a mode
  if [ "$p" = "$real" ]; then
    [ "$owner" = "$me" ] || refuse_dir "$dir belongs to another user (uid $owner), who could replace what is written there; use a directory of your own"
    if (( 8#$mode & 8#022 )); then refuse_dir "$dir is writable by others (mode $mode), who could replace what is written there; chmod go-w it, or use another directory"; fi
  else
    [ "$owner" = "$me" ] || [ "$owner" = 0 ] || refuse_dir "$p, above $dir, belongs to another user (uid $owner), who could put another directory in its place; use one in a directory of your own"
    if (( 8#$mode & 8#022 )) && ! (( 8#$mode & 8#1000 )); then refuse_dir "$p, above $dir, is writable by others (mode $mode), who could put another directory in its place; use one in a directory of your own"; fi
  fi
  [ "$p" != / ] || break
  p=$(dirname -- "$p")
done
# One run at a time in a directory (flock, from util-linux): a second one started meanwhile stops
# here, having made nothing of its own there (the directory counts as its own only once it holds
# the lock: another may be filling it), and a run that got in after another finished finds its
# setup.
exec 9<"$real"
if command -v flock >/dev/null && ! flock -n 9; then log "another deployment-setup is running in $dir; not starting a second"; exit 1; fi
[ "$made_dir" = no ] || made+=("$dir")
[ ! -e "$dir/policy-key.pem" ] || { log "$dir already holds a policy key (a run that ended meanwhile made it); not overwriting. $other_setup"; exit 1; }
dir=$real
# Made 0755 whatever the umask (umask 000 would leave it open to all): what it holds is public,
# but another user must not replace the measurement a machine is certified and sealed with.
[ -d "$dir/measurements" ] || { made+=("$dir/measurements"); mkdir -m 755 -- "$dir/measurements"; }
cu() { "$CERT_UTILITY" "$@"; }

log "policy key and certificate for domain $domain"
made+=("$dir/policy-key.pem" "$dir/policy-cert.pem")
policy_key_args "$dir"
cu "${policy_key[@]}" >&2
log "simulated platform keys (a TEST platform; real VMs use their hardware)"
[ -e "$dir/platform" ] || [ -L "$dir/platform" ] || made+=("$dir/platform")
for f in platform-key.pem platform-cert.pem attest-key.pem endorsement.bin; do made+=("$dir/platform/$f"); done
cu generate-platform-keys --out-dir "$dir/platform" >&2

# The key-server's and key-client's programs are found by name among those measured (the one file
# whose name holds "key-server", "key-client"); none or two alike are not told, never a guess.
the_one() {
  local n found= count=0
  for n in "${names[@]}"; do
    case "$n" in *"$1"*) found=$n; count=$((count + 1)) ;; esac
  done
  if [ "$count" -eq 1 ]; then printf '%s' "$found"; fi
}
kc_name=$(the_one key-client)
# key-server's ACL (README, Scenario 1 step 3), from the measurements the policy trusts: the
# key-client's program may store, retrieve, list and delete every name; every other one but the
# key-server's (the VM images, and each --trust-measurement) may only retrieve. Without it every
# admitted machine, each VM, could store a new version of any key. A key-client not told by name
# gets no ACL written: whose measurement may store is not known, and the printout says so.
# A measurement file holds the digest's bytes, as cert-utility measure --out writes them (0644
# whatever the umask; never over a file), here from the hex measured above.
write_measurement() (
  local bytes= i
  for ((i = 0; i < ${#1}; i += 2)); do bytes+="\\x${1:i:2}"; done
  umask 022 && set -o noclobber && printf "$bytes" >"$2"
)
readers=("${trust[@]}") kc_hex=
for i in "${!measure[@]}"; do
  f=${measure[i]} m=${measured[i]}
  name=$(basename -- "$f")
  made+=("$dir/measurements/$name.measurement")
  write_measurement "$m" "$dir/measurements/$name.measurement"
  log "measured $f: $m"
  trust+=("$m")
  case "$name" in
    "$kc_name") kc_hex=$m ;;
    *key-server* | *key-client*) ;;
    *) readers+=("$m") ;;
  esac
done
made+=("$dir/policy.bin")
policy_args "$dir" "${trust[@]}"
cu "${policy[@]}" >&2
if [ -n "$kc_name" ]; then
  # JSON of measurements, hex digits only (make-policy took each), and fixed words: nothing to escape.
  hex_list() { local out= h; for h in "$@"; do out+="${out:+, }\"$h\""; done; printf '[%s]' "$out"; }
  rules="    { \"comment\": \"the key-client's program stores the keys\", \"resources\": [\"**\"], \"actions\": [\"store\", \"retrieve\", \"list\", \"delete\"], \"measurements\": [\"$kc_hex\"] }"
  [ ${#readers[@]} -eq 0 ] || rules+=",
    { \"comment\": \"every other measurement but the key-server's (the VM images) only fetches them\", \"resources\": [\"**\"], \"actions\": [\"retrieve\"], \"measurements\": $(hex_list "${readers[@]}") }"
  made+=("$dir/acl.json")
  # 0644 whatever the umask: key-server refuses an ACL file others may change.
  (umask 022 && set -o noclobber && printf '{ "version": 1,\n  "rules": [\n%s ] }\n' "$rules" >"$dir/acl.json")
  # Read as key-server serve --acl will read it (its owner and mode too): an ACL it would refuse
  # is no setup, and the run stops, removing what it made, before the commands are printed.
  checked=$("$KEY_SERVER" check-acl "$dir/acl.json") || {
    rc=$?
    case $rc in
      130 | 143) ;; # stopped: the EXIT trap says what it removed
      1) log "key-server check-acl refuses the ACL this run wrote, $dir/acl.json (above), as serve --acl would" ;;
      *) log "could not ask $(printf '%q' "$KEY_SERVER") to check the ACL this run wrote (exit $rc, above; KEY_SERVER names the program)" ;;
    esac
    exit $rc
  }
  log "wrote key-server's ACL: $dir/acl.json (key-server check-acl: $checked)"
fi
finished=yes # the setup is whole: kept, even if the commands below cannot be printed

# The commands below are printed to be pasted, as the README's steps 2 to 5 for this directory:
# a path with a space in its name is quoted. The key-server's and key-client's measurement files
# are those found by name; none or two alike leave the variable empty for the operator to set (a
# command given an empty --measurement-file, or --acl, is a usage error), never a guess.
named() {
  local found
  found=$(the_one "$1")
  if [ -n "$found" ]; then printf '%q' "$dir/measurements/$found.measurement"; fi
}
q() { printf '%q' "$dir/$1"; }
qdomain=$(printf '%q' "$domain")
store() { printf -- '--store %s --sealed --platform simulated --platform-dir %s --measurement-file "$%s"' "$(q "$1")" "$(q platform)" "$2"; }
if [ -n "$kc_name" ]; then
  acl_set="# key-server's ACL, written from the measurements: the key-client's program may store,
#   retrieve, list and delete every key, every other one but the key-server's (the VM images) only
#   retrieve them (to change it: the README's ACL under key-server; key-server check-acl checks it):
acl=$(q acl.json)"
else
  acl_set="# No ACL written: not exactly one --measure file's name holds \"key-client\", so whose
#   measurement may store keys is not known. Write one (the README's ACL under key-server: the
#   key-client's measurement stores, the VM images' retrieve) and set acl to it; key-server serve
#   refuses an empty --acl, and without --acl every admitted machine, each VM, could store any key:
acl="
fi
echo "# Deployment machine ready in $dir. The measurements it wrote, one per --measure:"
for n in "${names[@]}"; do printf '#   %s\n' "$dir/measurements/$n.measurement"; done
cat <<NEXT
# Next, the README's Scenario 1, steps 2 to 5. The measurement files of the key-server's and the
# key-client's programs, found by their names among those (check them; set them if empty):
ks_measurement=$(named key-server)
kc_measurement=$(named key-client)
$acl_set
ks_hex=\$(od -An -tx1 -v "\$ks_measurement" | tr -d ' \\n')
# 2. simpleserver, the certificate authority (in a terminal of its own, or examples/systemd/simpleserver.service):
simpleserver serve --policy-key $(q policy-key.pem) --policy-cert $(q policy-cert.pem) --policy $(q policy.bin) --listen 0.0.0.0:8123
# 3. key-server is certified, then starts (in a terminal of its own, where the variable lines above are pasted first,
#    or examples/systemd/key-server.service);
#    --certifier: it renews its own certificate through simpleserver (without, its certificate of
#    90 days at most is never renewed); --acl: who may store and who only retrieve:
cert-utility init-trust --domain $qdomain --policy-cert $(q policy-cert.pem) --server 127.0.0.1:8123 $(store keyserver-store ks_measurement)
key-server serve --domain $qdomain --policy-cert $(q policy-cert.pem) --data $(q keyserver-data) $(store keyserver-store ks_measurement) --listen 0.0.0.0:8120 --certifier 127.0.0.1:8123 --acl "\$acl"
# 4. key-client is certified, then stores each key the VMs fetch (vhd/disk-1 here: one line per
#    name of first-boot.sh's --keys), straight from the random source into key-server:
cert-utility init-trust --domain $qdomain --policy-cert $(q policy-cert.pem) --server 127.0.0.1:8123 $(store keyclient-store kc_measurement)
head -c 32 /dev/urandom | key-client store vhd/disk-1 --in - --server 127.0.0.1:8120 --domain $qdomain --policy-cert $(q policy-cert.pem) --server-measurement "\$ks_hex" $(store keyclient-store kc_measurement)
# 5. Into each VM image: the suite (in /opt/certifier-keys, where examples/systemd/first-boot.service
#    runs its scripts/first-boot.sh, which runs the suite's cert-utility and key-client),
#    $dir/policy-cert.pem, and the unit's /etc/certifier-keys/first-boot.env with the
#    key-server's measurement (echo "SERVER_MEASUREMENT=\$ks_hex"); for a simulated VM also the
#    platform files (attest-key.pem, endorsement.bin) and its measurement (a SEV-SNP VM's hardware
#    supplies both)
NEXT
