package doctor

import "testing"

func TestGuessOwner(t *testing.T) {
	cases := []struct{ rule, comment, want string }{
		{`oifname "wt0" ct state established,related accept`, "", "NetBird"},
		{`iifname "tailscale0" accept`, "", "Tailscale"},
		{`jump ts-forward`, "", "Tailscale"},
		{`oifname "docker0" ct state established,related accept`, "", "Docker"},
		{`iifname "virbr0" accept`, "", "libvirt"},
		{`jump f2b-sshd`, "", "fail2ban"},
		{`ip saddr @crowdsec-blacklists drop`, "", "CrowdSec"},
		{`log prefix "[UFW BLOCK] " drop`, "", "ufw"},
		{`oifname "cni0" accept`, "", "flannel"},
		{`iifname "cali1234abcd" accept`, "", "Calico"},
		{`jump KUBE-ROUTER-FORWARD`, "", "kube-router"},
		{`ct state established,related accept`, "", "unknown"},
		{`ct state established,related accept`, "netbird acl", "NetBird"},
		{`iifname "wt0" oifname "docker0" accept`, "", "unknown"}, // two programs' names: no guess
		{`iifname "eth0" accept`, "", "unknown"},
	}
	for _, c := range cases {
		if got := guessOwner(c.rule, c.comment); got.Name != c.want {
			t.Errorf("%q (comment %q): owner %q (%s), want %q", c.rule, c.comment, got.Name, got.Reason, c.want)
		}
	}
}
