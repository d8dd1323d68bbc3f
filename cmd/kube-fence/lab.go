package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newLabCmd() *cobra.Command {
	lab := &cobra.Command{
		Use:   "lab",
		Short: "Build pods as network namespaces, enforce policies on them, probe with real packets",
	}
	lab.AddCommand(&cobra.Command{
		Use:   "demo",
		Short: "Run the built-in demo scenario",
		RunE:  func(*cobra.Command, []string) error { return errors.New("not implemented yet") },
	})
	return lab
}
