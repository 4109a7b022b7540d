# shellcheck shell=bash
# Sourced by first-boot.sh and deployment-setup.sh before they check anything: their standard
# streams, and how they match what they are given.

# A standard stream given closed (2>&-) becomes /dev/null, as Node makes it for the programs:
# bash may have opened the script in its place, read only, so each line to it, and each program
# whose output goes there, would fail. Told by the open file's flags (O_WRONLY, O_RDWR).
for fd in 1 2; do
  [ -d "/proc/$$/fdinfo" ] || break
  flags=
  if [ -e "/proc/$$/fdinfo/$fd" ]; then
    while read -r key value; do [ "$key" != flags: ] || flags=$value; done <"/proc/$$/fdinfo/$fd"
  fi
  [ -n "$flags" ] && (( 8#$flags & 3 )) || eval "exec $fd>/dev/null"
done

# A regular expression matched in the C locale: in another, a range follows the locale's
# collation (in tr_TR.UTF-8, [A-Za-z] leaves out "i" and "I" and takes in "é"; [0-9a-f] takes "é").
matches() ( LC_ALL=C; [[ $1 =~ $2 ]] ) # a subshell: restoring a locale that is not installed would warn

# Stopped by Ctrl-C (SIGINT, sent to every process of the terminal's group) or SIGTERM while a
# program runs: the program ends first (130, 143), and bash runs the line that would report it
# failing before its own trap, blaming the program. exit_if_stopped STATUS says instead that the
# run was stopped, and what it has not done ($stopped_so, which the script keeps up to date), and
# exits with that status; stop_traps says the same for a signal that comes between programs.
# ($script_name is the script's, set before this file is sourced.)
stopped_so=
exit_if_stopped() {
  case "$1" in 130) set -- 130 SIGINT ;; 143) set -- 143 SIGTERM ;; *) return 0 ;; esac
  # shellcheck disable=SC2154 # set by the script, before it sources this file
  printf '%s: stopped by %s%s\n' "$script_name" "$2" "${stopped_so:+; $stopped_so}" >&2
  exit "$1"
}
stop_traps() { trap 'exit_if_stopped 130' INT; trap 'exit_if_stopped 143' TERM; }
