# Sourced by the install-deps scripts: installs from Debian the packages whose
# proof file is missing. Nothing is fetched when every file is there.
#
#   install_missing <label> <package>=<file that proves it is installed> ...
#
# Needs root when something is missing (it says what to install otherwise).
# The package lists are refreshed only when the install fails with the ones
# the machine has (none, or stale ones naming files the mirror no longer has).
install_missing() {
  local label=$1 pair
  shift
  local missing=()
  for pair in "$@"; do
    [ -e "${pair#*=}" ] || missing+=("${pair%%=*}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "$label: missing ${missing[*]}; run as root (apt-get install ${missing[*]})" >&2
    return 1
  fi
  echo "$label: installing ${missing[*]}" >&2
  _apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
  }
  _apt_install "${missing[@]}" || { apt-get update -qq >&2 && _apt_install "${missing[@]}"; }
}
