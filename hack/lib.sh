# Shared by the hack/ scripts: Go on PATH, apt installs only of what is missing.

KUBE_FENCE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

require_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "$0: run as root: kube-fence creates network namespaces and programs nftables" >&2
		exit 1
	fi
}

# ensure_go puts a Go at least as new as go.mod's `go` line first on PATH:
# the one on PATH, else /usr/local/go, else the project's own copy under
# $KUBE_FENCE_GO_DIR (default _output/go), installing that copy from the Go
# module proxy when none of them is new enough. A Go the user installed is
# never replaced or changed. Installing needs curl or wget and unzip (apt
# installs them when run as root), not root itself.
ensure_go() {
	local want dir candidate
	want="$(sed -n 's/^go \([0-9][0-9.]*\).*/go\1/p' "$KUBE_FENCE_ROOT/go.mod")"
	dir="${KUBE_FENCE_GO_DIR:-$KUBE_FENCE_ROOT/_output/go}"
	for candidate in "$(command -v go 2>/dev/null)" /usr/local/go/bin/go "$dir/bin/go"; do
		if [ -n "$candidate" ] && [ -x "$candidate" ] && go_at_least "$candidate" "$want"; then
			export PATH="$(dirname "$candidate"):$PATH"
			return 0
		fi
	done
	echo "no Go >= ${want#go} on PATH or at /usr/local/go: installing the pinned toolchain into $dir" >&2
	if [ "$(id -u)" -eq 0 ]; then
		command -v curl >/dev/null 2>&1 || command -v wget >/dev/null 2>&1 || apt_install curl ca-certificates
		command -v unzip >/dev/null 2>&1 || apt_install unzip
	fi
	install_go "$dir" || return 1
	go_at_least "$dir/bin/go" "$want" || {
		echo "$0: the Go installed in $dir is older than $want: update hack/go-toolchain" >&2
		return 1
	}
	export PATH="$dir/bin:$PATH"
	echo "using $("$dir/bin/go" version) from $dir" >&2
}

# go_at_least GO WANT: whether the Go binary GO is release WANT (go1.X.Y) or
# newer. GOTOOLCHAIN=local keeps a Go that could switch toolchains from
# downloading one just to answer.
go_at_least() {
	local have
	have="$(cd / && GOTOOLCHAIN=local "$1" env GOVERSION 2>/dev/null)" || return 1
	have="${have%% *}"
	case "$have" in go1.*) ;; *) return 1 ;; esac
	[ "$(printf '%s\n%s\n' "${2#go}" "${have#go}" | sort -V | head -n1)" = "${2#go}" ]
}

# install_go DIR downloads the toolchain pinned in hack/go-toolchain through
# the first usable entry of GOPROXY, checks its SHA-256, and unpacks it as DIR.
install_go() {
	local dir="$1" version sum arch proxies proxy url tmp fetched=""
	version="$(sed -n 's/^version=//p' "$KUBE_FENCE_ROOT/hack/go-toolchain")"
	case "$(uname -m)" in
		x86_64) arch=amd64 ;;
		aarch64 | arm64) arch=arm64 ;;
		*) echo "$0: no Go toolchain is pinned for $(uname -m): install Go ${version#go} yourself" >&2; return 1 ;;
	esac
	sum="$(sed -n "s/^sha256_${arch}=//p" "$KUBE_FENCE_ROOT/hack/go-toolchain")"
	tmp="$(mktemp -d)"
	proxies="${GOPROXY:-https://proxy.golang.org,direct}"
	for proxy in $(printf '%s' "$proxies" | tr ',|' '  '); do
		case "$proxy" in direct | off) continue ;; esac
		url="${proxy%/}/golang.org/toolchain/@v/v0.0.1-${version}.linux-${arch}.zip"
		if download "$url" "$tmp/go.zip"; then
			fetched="$url"
			break
		fi
	done
	if [ -z "$fetched" ]; then
		echo "$0: could not download Go ${version#go} from GOPROXY=$proxies" >&2
		rm -rf "$tmp"
		return 1
	fi
	if ! echo "$sum  $tmp/go.zip" | sha256sum -c --quiet - >/dev/null 2>&1; then
		echo "$0: $fetched does not have the SHA-256 pinned in hack/go-toolchain ($sum): not installed" >&2
		rm -rf "$tmp"
		return 1
	fi
	unzip -q "$tmp/go.zip" -d "$tmp/unpacked" || { rm -rf "$tmp"; return 1; }
	# Module zips do not promise to keep file modes: make the tools runnable.
	local tc="$tmp/unpacked/golang.org/toolchain@v0.0.1-${version}.linux-${arch}"
	chmod +x "$tc"/bin/* "$tc"/pkg/tool/*/*
	mkdir -p "$(dirname "$dir")"
	rm -rf "$dir"
	mv "$tc" "$dir"
	rm -rf "$tmp"
}

# download URL FILE with curl, or wget where curl is missing.
download() {
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL --retry 3 -o "$2" "$1"
	else
		wget -q -O "$2" "$1"
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

# debian_download SUITE DEST PACKAGE...: Debian SUITE's .debs of PACKAGE
# (name or name=version) into DEST, through a private apt directory,
# _output/iptables/apt/SUITE (its own sources.list, lists and cache), so
# the machine's apt configuration is untouched. apt checks every file
# against the suite's signed Packages index; the index is fetched on the
# first call and again when a package is not in the one kept.
debian_download() {
	local suite="$1" dest="$2" apt_dir
	shift 2
	apt_dir="$KUBE_FENCE_ROOT/_output/iptables/apt/$suite"
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/sources.list.d" "$apt_dir/preferences.d" "$dest"
	[ -f "$apt_dir/status" ] || : > "$apt_dir/status"
	cat > "$apt_dir/sources.list" <<SRC
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main
SRC
	local opts=(
		-o "Dir::Etc::SourceList=$apt_dir/sources.list"
		-o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
		-o "Dir::Etc::PreferencesParts=$apt_dir/preferences.d"
		-o "Dir::State::Lists=$apt_dir/lists"
		-o "Dir::State::status=$apt_dir/status"
		-o "Dir::Cache=$apt_dir/cache"
		-o "APT::Architecture=amd64"
		-o "APT::Sandbox::User=root"
		-o "Acquire::Languages=none"
		-o "Debug::NoLocking=1"
	)
	if ! (cd "$dest" && apt-get -qq "${opts[@]}" download "$@") >/dev/null 2>&1; then
		apt-get -qq "${opts[@]}" update >&2
		(cd "$dest" && apt-get -qq "${opts[@]}" download "$@") >&2
	fi
}
