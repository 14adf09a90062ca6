#!/usr/bin/env bash
# Installs the system packages Autan needs that are missing (Debian/Ubuntu, via apt);
# elsewhere says what to install by hand. Quiet when everything is there.
set -euo pipefail

required=()  # apt packages whose absence stops Autan from running at all
wanted=()    # apt packages the sandbox, the tests or the dashboard need
hand=()      # what to tell a person on a system without apt

has() { command -v "$1" >/dev/null 2>&1; }

join() { local out="" item; for item in "$@"; do out+="${out:+; }$item"; done; echo "$out"; }

lack() {  # lack required|wanted APT_PACKAGE... -- DESCRIPTION
    local kind=$1
    shift
    local pkgs=()
    while [[ $1 != -- ]]; do pkgs+=("$1"); shift; done
    shift
    if [[ $kind == required ]]; then required+=("${pkgs[@]}"); else wanted+=("${pkgs[@]}"); fi
    hand+=("$*")
}

has_postgres_server() {
    has postgres && return 0
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

has_venv() {
    # Debian's python3 lacks ensurepip (so `python3 -m venv` fails) until python3-venv is in.
    has python3 && python3 -c 'import ensurepip, venv' >/dev/null 2>&1
}

has_chromium() {
    has chromium || has chromium-browser || has google-chrome || has google-chrome-stable
}

{ has redis-server && has redis-cli; } || lack required redis-server redis-tools -- "redis-server (and redis-cli)"
has git || lack required git -- "git"
has bwrap || lack wanted bubblewrap -- "bubblewrap (bwrap)"
has rg || lack wanted ripgrep -- "ripgrep (rg)"
{ has setpriv && has nsenter && has unshare; } || lack wanted util-linux -- "util-linux (unshare, nsenter, setpriv)"
has_postgres_server || lack wanted postgresql -- "PostgreSQL server"
{ has psql && has pg_isready; } || lack wanted postgresql-client -- "PostgreSQL client (psql, pg_isready)"
has_venv || lack wanted python3-venv -- "python3 >= 3.11 with venv"
[[ -e /etc/ssl/certs/ca-certificates.crt ]] || lack wanted ca-certificates -- "CA certificates"
has_chromium || lack wanted CHROMIUM -- "Chromium (browser tests)"
has rsync || lack wanted rsync -- "rsync (the sync benchmark's yardstick)"
# The cluster test gives its hosts wall clocks of their own with libfaketime (LD_PRELOAD).
compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null || lack wanted libfaketime -- "libfaketime (the cluster test's skewed clocks)"
# The sandbox's syscall filter is compiled with libseccomp (through pyseccomp).
# (Not `ldconfig -p | grep -q`: under pipefail, grep leaving early fails the pipe now and then.)
[[ $(/sbin/ldconfig -p 2>/dev/null) == *libseccomp.so.2* ]] || lack wanted libseccomp2 -- "libseccomp2 (the sandbox's syscall filter)"

if [[ ${#hand[@]} -eq 0 ]]; then
    echo "system packages: all present (redis-server, bubblewrap, util-linux, git, ripgrep, postgresql, python3-venv, chromium, rsync, libfaketime, libseccomp2)"
    exit 0
fi

sudo=()
can_apt=false
if has apt-get && has dpkg; then
    if [[ $(id -u) -eq 0 ]]; then
        can_apt=true
    elif has sudo; then
        can_apt=true
        # Without a terminal there is no one to type a password: fail instead of hanging.
        if [[ -t 0 ]]; then sudo=(sudo); else sudo=(sudo -n); fi
    fi
fi

by_hand() {  # by_hand WHY: say what to install, then fail only if Autan cannot run without it
    echo "system packages: $1; install by hand: $(join "${hand[@]}")" >&2
    if [[ ${#required[@]} -gt 0 ]]; then
        echo "error: Autan cannot run without redis-server and git; install them and run make again" >&2
        exit 1
    fi
    echo "system packages: going on without them; the parts that need them will say so" >&2
    exit 0
}

$can_apt || by_hand "missing, and no apt-get (or no root or sudo) to install them"

apt() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@"; }

echo "system packages: missing: $(join "${hand[@]}")"
apt update -qq || by_hand "apt-get update failed (see above)"

# Debian ships Chromium as a package; Ubuntu only as a snap, which needs snapd and
# so is left to the person (a failed snap shim would leave dpkg half-configured).
chromium_pkg=""
distro=$(sed -n 's/^ID=//p' /etc/os-release 2>/dev/null | tr -d '"' || true)
for i in "${!wanted[@]}"; do
    if [[ ${wanted[$i]} == CHROMIUM ]]; then
        unset 'wanted[i]'
        if [[ $distro != ubuntu ]] && apt-cache show chromium >/dev/null 2>&1; then
            chromium_pkg=chromium
        else
            echo "system packages: no chromium package here; install Chromium by hand for the browser tests" \
                "(on Ubuntu: snap install chromium)" >&2
        fi
    fi
done

pkgs=("${required[@]}" "${wanted[@]}")
echo "system packages: installing ${pkgs[*]} $chromium_pkg"
if [[ ${#pkgs[@]} -gt 0 ]] && ! apt install -y -qq --no-install-recommends "${pkgs[@]}"; then
    by_hand "apt-get install ${pkgs[*]} failed (see above)"
fi

if [[ -n $chromium_pkg ]] && ! apt install -y -qq --no-install-recommends "$chromium_pkg"; then
    # Only the browser tests need it; everything else works without.
    echo "warning: could not install $chromium_pkg; the browser tests will not run" >&2
fi

echo "system packages: done"
