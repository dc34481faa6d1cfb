// Package check holds the offline schema check of the Helm chart: the
// manifests `helm template` renders are decoded strictly into the
// Kubernetes API types, so that a misspelt or misplaced field fails. It is
// a module of its own so that k8s.io/api stays out of airlock's
// dependencies.
package check
