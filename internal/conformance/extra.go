package conformance

// Extra returns kube-fence's own cases about changes while traffic is
// tested that upstream's list lacks: a pod created after the policy that
// concerns it (as the isolated pod and as the allowed peer), and labels
// changed so that a pod or a namespace leaves a selector.
func Extra() []Case {
	fromD := Policy("x", "allow-only-from-pods-d", all, Ingress(From(nil, PodNamespacePeer(Labels(PodLabel, "d"), all))))
	denyA := Policy("x", "deny-ingress-a", podA, Ingress())
	fromNSLabel := Policy("x", "allow-from-ns-label-y", podA, Ingress(From(nil, NamespacePeer(Labels(NamespaceLabel, "y")))))
	onlyXA := func(r *Reach) { r.ExpectAllIngress("x/a", false) }
	return []Case{
		{Name: "pods created after the policy are enforced at once, as isolated pods and as allowed peers", Group: GroupExtra, Steps: []Step{
			{Action: describe(pols(fromD)), Change: apply(fromD), Checks: []Check{tcp(80, denyIngressToX)}},
			{Action: "create pods y/d and x/d (labelled pod=d)",
				Change: func(s *State) error { s.AddPod("y", "d"); s.AddPod("x", "d"); return nil },
				Checks: []Check{tcp(80, func(r *Reach) {
					denyIngressToX(r)
					r.ExpectPeer(Peer{Pod: "d"}, xPods, true)
				})}},
		}},
		{Name: "a pod relabelled out of a policy's podSelector is no longer isolated", Group: GroupExtra, Steps: []Step{
			{Action: describe(pols(denyA)), Change: apply(denyA), Checks: []Check{tcp(80, onlyXA)}},
			{Action: "label pod x/a pod=e",
				Change: func(s *State) error { return s.LabelPod("x/a", PodLabel, "e") },
				Checks: []Check{tcp(80, nil)}},
		}},
		{Name: "a namespace relabelled out of a namespaceSelector loses its access", Group: GroupExtra, Steps: []Step{
			{Action: describe(pols(fromNSLabel)), Change: apply(fromNSLabel),
				Checks: []Check{tcp(80, func(r *Reach) { onlyXA(r); r.ExpectPeer(yPods, xa, true) })}},
			{Action: "label namespace y ns=other",
				Change: func(s *State) error { return s.LabelNamespace("y", NamespaceLabel, "other") },
				Checks: []Check{tcp(80, onlyXA)}},
		}},
	}
}
