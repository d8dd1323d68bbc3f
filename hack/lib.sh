# Shared by the hack/ scripts: Go on PATH, apt installs only of what is missing.

export PATH="/usr/local/go/bin:${PATH}"

require_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "$0: run as root: kube-fence creates network namespaces and programs nftables" >&2
		exit 1
	fi
}

require_go() {
	if ! command -v go >/dev/null 2>&1; then
		echo "$0: Go 1.26 or newer is needed (expected at /usr/local/go/bin/go or on PATH)" >&2
		exit 1
	fi
}

# apt_install PACKAGE... installs the packages that are not installed yet.
apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	echo "installing: ${missing[*]}"
	if [ ! -f /var/lib/apt/.kube-fence-updated ] || [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit 2>/dev/null)" ]; then
		apt-get update -qq && touch /var/lib/apt/.kube-fence-updated
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
