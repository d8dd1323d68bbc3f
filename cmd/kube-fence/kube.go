package main

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeClient is the API server client of the agent, the doctor's guard and
// explain: from a kubeconfig file, or the in-cluster service account when
// the path is empty.
func kubeClient(kubeconfig, userAgent string) (kubernetes.Interface, error) {
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
	return kubernetes.NewForConfig(config)
}
