package check

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Object is one rendered manifest, decoded into its API type.
type Object struct {
	Kind, Name string
	Value      any // *appsv1.Deployment, *corev1.Service, ...
}

// newObject returns an empty value of the API type for apiVersion and
// kind, or nil for a kind the chart does not render.
func newObject(apiVersion, kind string) any {
	switch apiVersion + " " + kind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}
	case "v1 Service":
		return &corev1.Service{}
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}
	case "v1 Secret":
		return &corev1.Secret{}
	case "batch/v1 Job":
		return &batchv1.Job{}
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &ServiceMonitor{}
	}
	return nil
}

// Decode reads a stream of YAML documents and decodes each strictly: an
// unknown field, a duplicate key, a value of the wrong type or a kind this
// check does not know is an error naming the document.
func Decode(r io.Reader) ([]Object, error) {
	docs := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var objs []Object
	for i := 1; ; i++ {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, err := decodeOne(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, obj.Kind+" "+obj.Name, err)
		}
		objs = append(objs, obj)
	}
}

func decodeOne(doc []byte) (Object, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return Object{}, err
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return Object{}, err
	}
	obj := Object{Kind: head.Kind, Name: head.Metadata.Name}
	obj.Value = newObject(head.APIVersion, head.Kind)
	if obj.Value == nil {
		return obj, fmt.Errorf("unknown apiVersion %q and kind %q", head.APIVersion, head.Kind)
	}
	// As the API server reads it: field names match case-sensitively
	// (encoding/json would take readOnlyRootFileSystem for
	// readOnlyRootFilesystem), and unknown or repeated ones are errors.
	strict, err := kjson.UnmarshalStrict(js, obj.Value, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return obj, err
	}
	if len(strict) > 0 {
		return obj, errors.Join(strict...)
	}
	return obj, nil
}

// stripComments drops the lines that are only a comment, such as the
// "# Source:" lines helm writes between documents.
func stripComments(doc []byte) []byte {
	var out []byte
	for line := range bytes.Lines(doc) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] == '#' {
			continue
		}
		out = append(out, line...)
	}
	return out
}
