package main

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	cnpclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"
)

// kubeClient is the API server client of the agent, the doctor's guard and
// explain: from a kubeconfig file, or the in-cluster service account when
// the path is empty.
func kubeClient(kubeconfig, userAgent string) (kubernetes.Interface, error) {
	config, err := restConfig(kubeconfig, userAgent)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(config)
}

// policyClient is the agent's client for ClusterNetworkPolicies, with the
// same configuration as kubeClient's.
func policyClient(kubeconfig, userAgent string) (cnpclient.Interface, error) {
	config, err := restConfig(kubeconfig, userAgent)
	if err != nil {
		return nil, err
	}
	return cnpclient.NewForConfig(config)
}

func restConfig(kubeconfig, userAgent string) (*rest.Config, error) {
	var (
		config *rest.Config
		err    error
	)
	if kubeconfig != "" {
		config, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		config, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("API server configuration: %w", err)
	}
	config.UserAgent = userAgent
	// Watches carry the load; a modest rate keeps relists after an API
	// server restart from hammering it on big clusters.
	config.QPS, config.Burst = 20, 40
	return config, nil
}
